package bench_test

import (
	"testing"
)

// TestCorrectness runs the correctness check on every stack: the same user, page,
// inbox, appended row, read position and imported rows. The benchmarks run the
// same check before they time a stack.
func TestCorrectness(t *testing.T) {
	for _, name := range stackNames() {
		t.Run(name, func(t *testing.T) {
			stack(t, name)
		})
	}
}
