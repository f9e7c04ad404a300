package store

// WithPolicyBackend makes the store run every operation through the ent client
// under its privacy policies, instead of the hand-written statements New
// chooses: the privacy suite runs every case both ways and requires the same
// answers. Tests only.
func WithPolicyBackend() Option {
	return func(s *Store) { s.policy = true }
}
