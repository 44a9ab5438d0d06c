// Package internal holds code shared by this repository's packages and
// tests that is not part of the public API.
package internal
