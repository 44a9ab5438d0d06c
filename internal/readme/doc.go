// Package readme holds the test that compiles every Go snippet of the
// repository's README.md, so that the documentation cannot drift from the
// API. It has no code of its own.
//
// A README snippet is a fenced "go" block. It is compiled as a program in
// the module the HTML comments just above it name (default: the root
// module):
//
//	<!-- snippet module=middleware/kyapaygin -->
//	<!-- prelude: var m *middleware.Middleware -->
//
// A prelude line adds top-level Go code the reader is assumed to have
// (variables from an earlier snippet). A snippet whose first line starts a
// declaration (func, type, var, const) is placed at top level; any other
// snippet becomes the body of main. A snippet starting with "package" is
// compiled as it is. Imports are added for the packages a snippet names,
// from a fixed table. Shell and other blocks are not compiled.
package readme
