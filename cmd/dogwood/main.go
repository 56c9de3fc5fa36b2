// Command dogwood is the agent every host runs and the CLI operators and developers
// use. This package is the only place that wires the mesh, dns and peers packages
// together; everything below it takes plain option structs.
package main

import "os"

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
