package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/pingap-go/pingap/internal/config"
	"github.com/pingap-go/pingap/internal/config/source"
	"github.com/pingap-go/pingap/internal/engine"
)

// configSource returns the loader for -config: config.Load for a file or
// folder; for etcd://HOST:PORT/PREFIX the etcd source (also returned, for
// the watch and the admin API's Persist) and a loader reading the prefix
// at one revision.
func configSource(path string) (*source.Etcd, func() (*config.Config, error), error) {
	if !source.IsEtcd(path) {
		return nil, func() (*config.Config, error) { return config.Load(path) }, nil
	}
	src, err := source.OpenEtcd(path)
	if err != nil {
		return nil, nil, err
	}
	return src, func() (*config.Config, error) { return src.Load(context.Background()) }, nil
}

// watchEtcd keeps a running proxy in step with its etcd prefix: any change
// under it is a reload (debounced; all or nothing; counted in
// config_reloads_total). It is always on for etcd, whatever
// basic.auto_reload says. The returned func stops the watch and closes the
// client (idempotent; shutdown calls it first so a change made while
// draining does not reload a stopping engine); with src nil (a file config)
// there is nothing to watch.
func watchEtcd(src *source.Etcd, log *slog.Logger, reload func()) (stop func()) {
	if src == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	src.Log = log
	src.Watch(ctx, func() {
		log.Info("configuration changed in etcd: reloading", slog.String("source", src.Source()))
		reload()
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			src.Close()
		})
	}
}

// configCommand runs `pingap config push|pull`:
//
//	pingap config push -config FILE.toml -to etcd://HOST:PORT/PREFIX
//	pingap config pull -from etcd://HOST:PORT/PREFIX
//
// push validates the file like -t does, then replaces the prefix's items in
// one transaction, or several beyond etcd's --max-txn-ops (keys not in the
// file are deleted; see source.Etcd.Push); running proxies
// watching the prefix reload. pull prints the prefix's config as one TOML
// document (the format of a config file). Exit codes: 0 done, 1 failed,
// 2 bad usage.
func configCommand(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: pingap config push -config FILE.toml -to etcd://HOST:PORT/PREFIX")
		fmt.Fprintln(stderr, "       pingap config pull -from etcd://HOST:PORT/PREFIX")
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	fs := flag.NewFlagSet("pingap config "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "push":
		file := fs.String("config", "", "the configuration to upload: a TOML file or a folder of *.toml files")
		to := fs.String("to", "", "where: etcd://HOST:PORT/PREFIX")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *file == "" || !source.IsEtcd(*to) || fs.NArg() > 0 {
			return usage()
		}
		return configPush(*file, *to, stdout, stderr)
	case "pull":
		from := fs.String("from", "", "etcd://HOST:PORT/PREFIX")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if !source.IsEtcd(*from) || fs.NArg() > 0 {
			return usage()
		}
		return configPull(*from, stdout, stderr)
	default:
		return usage()
	}
}

func configPush(file, to string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(file)
	if err == nil {
		err = engine.Check(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintf(stderr, "configuration %s is invalid; nothing pushed\n", file)
		return 1
	}
	src, err := source.OpenEtcd(to)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer src.Close()
	if err := src.Push(context.Background(), cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "pushed %s to %s\n", file, src.Source())
	return 0
}

func configPull(from string, stdout, stderr io.Writer) int {
	src, err := source.OpenEtcd(from)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer src.Close()
	cfg, err := src.Load(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	b, err := config.Encode(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if _, err := stdout.Write(b); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
