//go:build tools

// Package tools pins the local-path provisioner for build/cluster/build.
package tools

import _ "github.com/rancher/local-path-provisioner"
