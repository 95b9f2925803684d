// Package streamecho is a test backend handler shared by the transport and
// end-to-end tests of full-duplex request bodies.
package streamecho

import "net/http"

// Handler answers while it reads: every piece of the request body is
// written back and flushed as it arrives, read bufSize bytes at a time (a
// full-duplex streaming echo, like Node's req.pipe(res)).
func Handler(bufSize int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(200)
		buf := make([]byte, bufSize)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})
}
