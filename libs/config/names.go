package config

import "crypto/rand"

const (
	// RunnerSuffixLen is the length of the random suffix of a runner name.
	RunnerSuffixLen = 8
	// MaxRunnerNameLen is the longest runner name (the GCE instance name limit).
	MaxRunnerNameLen = 63
	// maxManagerNameLen leaves room for "-", a one-character group, "-" and the suffix.
	maxManagerNameLen = MaxRunnerNameLen - RunnerSuffixLen - 3
)

// RunnerName is the name of a runner, of its instance and of its GitHub
// registration: <managerName>-<group>-<suffix>. Load guarantees it fits in
// MaxRunnerNameLen characters for every configured group with a suffix of
// RunnerSuffixLen characters.
func RunnerName(managerName, group, suffix string) string {
	return managerName + "-" + group + "-" + suffix
}

const suffixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewRunnerSuffix returns RunnerSuffixLen random characters a-z and 0-9 from
// crypto/rand (about 41 bits: collisions within a group are negligible).
func NewRunnerSuffix() string {
	out := make([]byte, 0, RunnerSuffixLen)
	var buf [2 * RunnerSuffixLen]byte
	for len(out) < RunnerSuffixLen {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand since Go 1.24)
		for _, b := range buf {
			// 252 = 7*36: rejecting larger bytes keeps the distribution uniform.
			if b < 252 && len(out) < RunnerSuffixLen {
				out = append(out, suffixAlphabet[b%36])
			}
		}
	}
	return string(out)
}

// IsRunnerName tells whether s may be a runner's name, and so an instance
// name, a container name, a tag or label value and a word of a startup
// script (docs/design.md §5): 1 to MaxRunnerNameLen characters a-z, 0-9 and '-',
// starting with a letter and not ending with '-' (the GCE instance name
// rule, the strictest of the backends). Every backend checks it before a
// name reaches its API (libs/backend.CheckRunnerName).
func IsRunnerName(s string) bool {
	if len(s) == 0 || len(s) > MaxRunnerNameLen || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
