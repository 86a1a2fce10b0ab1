// Command etcd runs the etcd server; a wrapper module is needed because etcd's
// own go.mod carries replace directives that `go install` refuses.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
