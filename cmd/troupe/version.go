package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/troupedb/troupe/internal/etcdversion"
)

// etcdAPIVersion is the etcd release whose client API troupe speaks.
const etcdAPIVersion = etcdversion.API

// version prints what etcd --version prints, for troupe.
func version(w io.Writer) int {
	v, rev := "(devel)", "not recorded (built with -buildvcs=false or outside git)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	fmt.Fprintf(w, "troupe Version: %s\n", v)
	fmt.Fprintf(w, "Git SHA: %s\n", rev)
	fmt.Fprintf(w, "etcd API Version: %s\n", etcdAPIVersion)
	fmt.Fprintf(w, "Go Version: %s\n", runtime.Version())
	fmt.Fprintf(w, "Go OS/Arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
	return exitOK
}
