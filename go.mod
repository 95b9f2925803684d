

require (

)
