package database

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRecordEnd: an insert position just past a page header is the end of
// the record before it, the form a standby's replay position takes; any other
// position is kept.
func TestRecordEnd(t *testing.T) {
	const blk, seg = 8192, 16 << 20
	for _, c := range []struct{ in, want uint64 }{
		{0x3000148, 0x3000148},
		{0x3002000 + 24, 0x3002000},              // after a short page header
		{0x4000000 + 40, 0x4000000},              // after the long header of a segment's first page
		{0x4000000 + 24, 0x4000000 + 24},         // inside a long header: not a boundary case
		{0x3002000 + 40, 0x3002000 + 40},         // 16 bytes into a page: a record ends there
		{0x3002000 + 48, 0x3002000 + 48},         // an ordinary position
		{0x1_0000_0000 + 24, 0x1_0000_0000 + 24}, // a segment start (4 GB is one) has a long header
	} {
		require.Equal(t, formatLSN(c.want), formatLSN(recordEnd(c.in, blk, seg)), formatLSN(c.in))
	}
}

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "0/3000148", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		lsn, ok := parseLSN(s)
		require.True(t, ok, s)
		require.Equal(t, s, formatLSN(lsn))
		tok := encodeToken(lsn)
		back, err := parseToken(tok)
		require.NoError(t, err)
		require.Equal(t, lsn, back)
	}
	for _, s := range []string{"", "/", "0/", "/1", "123456789/0", "g/0", "0/-1", "0 /1"} {
		_, ok := parseLSN(s)
		require.False(t, ok, s)
	}
}
