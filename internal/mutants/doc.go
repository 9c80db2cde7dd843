// Command mutants checks that the election tests would catch a broken
// protocol. It reads a list of mutations — each replaces one exact snippet
// of one source file — applies them one at a time through `go test
// -overlay` (the tree is never modified), runs the package's tests, and
// counts a mutant killed when the tests fail. A mutant marked equivalent
// changes no observable behaviour (the reason is written in the list's
// companion file) and is not run.
//
//	go run ./internal/mutants -list election/testdata/mutants.txt
//
// It ends with one line `mutants: K killed, S survived, E equivalent` and
// exits 1 if any mutant survived or did not apply.
//
// List format: blocks separated by blank lines, one `key: value` per line:
//
//	name: lease start from the latest ack
//	file: election/membership.go
//	old: start = min(start, ts[len(ts)-q])
//	new: start = min(start, ts[len(ts)-1])
//	equivalent: yes            (optional)
//
// In old and new, \n stands for a newline and \t for a tab; old must occur
// exactly once in the file.
package main
