package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v62/github"

	"github.com/runner-manager/runner-manager/libs/config"
)

// installations are a GitHub App's installations: which one serves each
// account (organization or repository owner), found through the App and
// cached, and a client per installation with its own token and budget.
//
// An App is installed at most once per account, so the installation of a
// repository is its owner's: the cache is keyed by the owner's login.
type installations struct {
	tr        *transport
	appID     int64
	key       config.Secret
	baseURL   *url.URL
	userAgent string
	// override, when not 0, serves every account (RM_GITHUB_APP_INSTALLATION_ID).
	override int64

	mu        sync.Mutex
	byAccount map[string]int64 // lower-case login → installation id
	clients   map[int64]*gh.Client
}

// account is what a call concerns: an organization (repo empty) or a
// repository.
type account struct {
	owner, repo string
}

func orgAccount(org string) account          { return account{owner: org} }
func repoAccount(owner, repo string) account { return account{owner: owner, repo: repo} }
func scopeAccount(s Scope) account {
	if s.IsOrg() {
		return orgAccount(s.Org)
	}
	return repoAccount(s.Owner, s.Repo)
}

// errNotInstalled: the App has no installation on the account. It is a
// plain error so that wrapError classifies it ErrPermanent: never
// ErrNotFound, which DeleteRunner's callers read as "already gone".
var errNotInstalled = errors.New("the GitHub App is not installed on the account")

// lookup returns the installation serving a, asking GitHub when the cache
// does not know it.
func (in *installations) lookup(ctx context.Context, apps *gh.Client, a account) (int64, error) {
	if in.override != 0 {
		return in.override, nil
	}
	login := strings.ToLower(a.owner)
	in.mu.Lock()
	id, ok := in.byAccount[login]
	in.mu.Unlock()
	if ok {
		return id, nil
	}
	path := "orgs/" + url.PathEscape(a.owner) + "/installation"
	if a.repo != "" {
		path = "repos/" + url.PathEscape(a.owner) + "/" + url.PathEscape(a.repo) + "/installation"
	}
	req, err := apps.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	var out struct {
		ID int64 `json:"id"`
	}
	_, err = apps.Do(ctx, req, &out)
	var ghErr *gh.ErrorResponse
	if errors.As(err, &ghErr) && ghErr.Response != nil && ghErr.Response.StatusCode == http.StatusNotFound {
		return 0, errNotInstalled
	}
	if err != nil {
		return 0, err
	}
	if out.ID <= 0 {
		return 0, errInvalidBody
	}
	in.mu.Lock()
	in.byAccount[login] = out.ID
	in.mu.Unlock()
	return out.ID, nil
}

// client returns the client of an installation, authenticated with its
// tokens and spending its budget.
func (in *installations) client(id int64) (*gh.Client, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c := in.clients[id]; c != nil {
		return c, nil
	}
	// One AppsTransport per installation: ghinstallation's Transport writes
	// to its AppsTransport when it refreshes a token.
	atr, err := ghinstallation.NewAppsTransport(budgetTransport{t: in.tr, label: strconv.FormatInt(id, 10)}, in.appID, []byte(in.key.Value()))
	if err != nil {
		return nil, fmt.Errorf("parse the App private key: %w", err)
	}
	atr.BaseURL = strings.TrimSuffix(in.baseURL.String(), "/")
	itr := ghinstallation.NewFromAppsTransport(atr, id)
	itr.BaseURL = atr.BaseURL
	c := newGitHub(&http.Client{Transport: itr}, in.baseURL, in.userAgent)
	in.clients[id] = c
	return c, nil
}

// forget drops installation id: its client (and cached token) and the
// accounts it served, so that the next call looks them up again.
func (in *installations) forget(id int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.clients, id)
	for login, v := range in.byAccount {
		if v == id {
			delete(in.byAccount, login)
		}
	}
}

// installationGone tells whether err says that an installation no longer
// exists: GitHub refused it a token (404), or refused its token (401), as
// after the App was uninstalled (and perhaps installed again, with a new
// id).
func installationGone(err error) bool {
	var tokErr *ghinstallation.HTTPError
	if errors.As(err, &tokErr) {
		return tokErr.Response != nil && tokErr.Response.StatusCode == http.StatusNotFound
	}
	var ghErr *gh.ErrorResponse
	return errors.As(err, &ghErr) && ghErr.Response != nil && ghErr.Response.StatusCode == http.StatusUnauthorized
}

// callAs runs one operation with the client of a's installation (the
// token's client with a token). When the installation turns out to be gone
// it is forgotten, looked up again, and the operation tried once more.
func (c *Client) callAs(ctx context.Context, op string, sensitive bool, a account, fn func(ctx context.Context, g *gh.Client) error) error {
	if c.installs == nil {
		return c.call(ctx, op, sensitive, func(ctx context.Context) error { return fn(ctx, c.token) })
	}
	for attempt := 1; ; attempt++ {
		var gone int64
		err := c.call(ctx, op, sensitive, func(ctx context.Context) error {
			id, err := c.installs.lookup(ctx, c.apps, a)
			if err != nil {
				return err
			}
			g, err := c.installs.client(id)
			if err != nil {
				return err
			}
			err = fn(ctx, g)
			if installationGone(err) {
				gone = id
			}
			return err
		})
		if gone == 0 || attempt > 1 || c.installs.override != 0 {
			return err
		}
		c.log.InfoContext(ctx, "github installation gone, looking it up again", "installation", gone)
		c.installs.forget(gone)
	}
}
