package webhooktest

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
)

// Variants makes many distinct signed bodies from one payload cheaply, for
// load generators: the ingress refuses a signed body it has already accepted
// (under any delivery id), so every request of a load test needs a body of
// its own, and signing 10 KB per request would spend the CPU being measured.
//
// Body(id) is base with its closing brace replaced by `,"load_id":"<id>"}`;
// the HMAC-SHA256 state after the shared prefix is computed once, so a
// variant costs a few SHA-256 blocks. Use ids unique across runs against the
// same Redis (the delivery id does).
type Variants struct {
	prefix []byte // base without its closing brace
	inner  []byte // marshalled SHA-256 state after (key ^ ipad) || prefix
	opad   [sha256.BlockSize]byte
}

// NewVariants prepares the variants of base (a JSON object) under secret.
func NewVariants(secret string, base []byte) *Variants {
	base = bytes.TrimRight(base, " \n")
	if len(base) == 0 || base[len(base)-1] != '}' {
		panic("webhooktest.NewVariants: base is not a JSON object")
	}
	v := &Variants{prefix: base[:len(base)-1]}
	key := []byte(secret)
	if len(key) > sha256.BlockSize {
		k := sha256.Sum256(key)
		key = k[:]
	}
	var ipad [sha256.BlockSize]byte
	copy(ipad[:], key)
	copy(v.opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		v.opad[i] ^= 0x5c
	}
	h := sha256.New()
	h.Write(ipad[:])
	h.Write(v.prefix)
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err)
	}
	v.inner = state
	return v
}

// Body returns the variant id and its X-Hub-Signature-256 value. id must not
// need JSON escaping (letters, digits, dashes).
func (v *Variants) Body(id string) (body []byte, sig string) {
	suffix := make([]byte, 0, 16+len(id))
	suffix = append(append(append(suffix, `,"load_id":"`...), id...), `"}`...)
	body = make([]byte, 0, len(v.prefix)+len(suffix))
	body = append(append(body, v.prefix...), suffix...)

	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(v.inner); err != nil {
		panic(err)
	}
	h.Write(suffix)
	var sum [sha256.Size]byte
	inner := h.Sum(sum[:0])
	o := sha256.New()
	o.Write(v.opad[:])
	o.Write(inner)
	return body, "sha256=" + hex.EncodeToString(o.Sum(sum[:0]))
}
