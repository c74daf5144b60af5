package fakegithub

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// maxJWTLifetime is GitHub's limit on how far ahead an App JWT may expire;
// jwtSkew is the clock drift tolerated.
const (
	maxJWTLifetime = 10 * time.Minute
	jwtSkew        = 30 * time.Second
)

// issuedToken is an installation token: its installation and expiry.
type issuedToken struct {
	installation int64
	expires      time.Time
}

// authenticate returns "" when the request carries acceptable credentials for a
// route of that kind, else GitHub's message for the 401; and the installation
// of an installation token (0 for other credentials).
func (s *Server) authenticate(r *http.Request, kind routeAuth) (int64, string) {
	msg := s.authenticateCred(r, kind)
	if msg != "" {
		return 0, msg
	}
	_, cred, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[strings.TrimSpace(cred)].installation, ""
}

func (s *Server) authenticateCred(r *http.Request, kind routeAuth) string {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	cred = strings.TrimSpace(cred)
	if h == "" || !ok || cred == "" {
		return "Requires authentication"
	}
	if !strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token") {
		return "Bad credentials"
	}
	if s.opts.AcceptAnyToken {
		return ""
	}
	isJWT := strings.Count(cred, ".") == 2 && strings.HasPrefix(cred, "eyJ")
	if kind == authApp && s.appKey != nil {
		if !isJWT {
			return "A JSON web token could not be decoded"
		}
		return s.verifyJWT(cred)
	}
	if isJWT && s.appKey != nil {
		// GitHub does not accept an App JWT where an installation token is needed.
		return "Bad credentials"
	}
	for _, t := range s.opts.Tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(cred)) == 1 {
			return ""
		}
	}
	s.mu.Lock()
	tok, found := s.tokens[cred]
	s.mu.Unlock()
	if found && s.opts.Now().Before(tok.expires) {
		return ""
	}
	return "Bad credentials"
}

// installationOf returns the installation on an account, false when the App
// is not installed there.
func (s *Server) installationOf(login string) (int64, bool) {
	if len(s.opts.Installations) == 0 {
		return s.opts.InstallationID, true
	}
	for l, id := range s.opts.Installations {
		if strings.EqualFold(l, login) {
			return id, true
		}
	}
	return 0, false
}

// hasInstallation tells whether id is one of the App's installations.
func (s *Server) hasInstallation(id int64) bool {
	if len(s.opts.Installations) == 0 {
		return id == s.opts.InstallationID
	}
	for _, v := range s.opts.Installations {
		if v == id {
			return true
		}
	}
	return false
}

// countInstallationCall counts a call made with a token of installation
// under the account of its path ({org} or {owner}), and tells whether the
// installation may act on that account.
func (s *Server) countInstallationCall(installation int64, r *http.Request) bool {
	account := ""
	// Every installation route is /orgs/{org}/... or /repos/{owner}/{repo}/...
	if segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); len(segs) > 1 && (segs[0] == "orgs" || segs[0] == "repos") {
		account = segs[1]
	}
	id, installed := s.installationOf(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	if account != "" && (!installed || id != installation) {
		s.stats.foreignCalls++
		return false
	}
	m := s.stats.installCalls[installation]
	if m == nil {
		m = map[string]int64{}
		s.stats.installCalls[installation] = m
	}
	m[strings.ToLower(account)]++
	return true
}

// verifyJWT checks an App JWT as GitHub does: RS256 signed by the App's key, iss
// the App id, iat not in the future and exp not past, both with 30 s of clock
// skew, and exp at most 10 minutes ahead.
// It returns "" or GitHub's message, which never contains the token.
func (s *Server) verifyJWT(token string) string {
	now := s.opts.Now()
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if _, err := parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return s.appKey, nil }); err != nil {
		return "A JSON web token could not be decoded"
	}
	iss := fmt.Sprint(claims["iss"])
	if f, ok := claims["iss"].(float64); ok {
		iss = strconv.FormatInt(int64(f), 10)
	}
	if iss != strconv.FormatInt(s.opts.AppID, 10) {
		return "'Issuer' claim ('iss') must be an Integer"
	}
	iat, okI := claims["iat"].(float64)
	exp, okE := claims["exp"].(float64)
	if !okI || !okE {
		return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	}
	iatT, expT := time.Unix(int64(iat), 0), time.Unix(int64(exp), 0)
	switch {
	case iatT.After(now.Add(jwtSkew)):
		return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
	case !expT.After(now.Add(-jwtSkew)):
		return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	case expT.After(now.Add(maxJWTLifetime + jwtSkew)):
		return "'Expiration time' claim ('exp') is too far in the future"
	}
	return ""
}

// createAccessToken: POST /app/installations/{installation_id}/access_tokens.
func (s *Server) createAccessToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("installation_id"), 10, 64)
	if err != nil || !s.hasInstallation(id) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	token := "ghs_" + hex.EncodeToString(b)
	exp := s.opts.Now().Add(time.Hour).UTC().Truncate(time.Second)
	s.mu.Lock()
	s.tokens[token] = issuedToken{installation: id, expires: exp}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":      token,
		"expires_at": exp.Format(time.RFC3339),
		"permissions": map[string]string{
			"actions":                          "read",
			"administration":                   "write",
			"metadata":                         "read",
			"organization_self_hosted_runners": "write",
		},
		"repository_selection": "all",
	})
}
