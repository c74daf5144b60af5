package github

import "strings"

// routeAccessTokens is the App's installation token endpoint.
const routeAccessTokens = "/app/installations/{installation_id}/access_tokens"

// routeOther labels a path that matches no known template, so that metric
// cardinality stays bounded.
const routeOther = "other"

// routes are the templates of every endpoint the client calls (those of
// libs/github/reference/github-actions-runners.openapi.json, plus the repository
// and organization webhook endpoints that the reference does not hold).
// Metrics are labelled with the template, never with the concrete path.
var routes = compileRoutes(
	"/app",
	"/app/hook/deliveries",
	"/app/hook/deliveries/{delivery_id}",
	"/app/hook/deliveries/{delivery_id}/attempts",
	routeAccessTokens,
	"/orgs/{org}/actions/runner-groups",
	"/orgs/{org}/actions/runner-groups/{runner_group_id}",
	"/orgs/{org}/actions/runner-groups/{runner_group_id}/repositories",
	"/orgs/{org}/actions/runner-groups/{runner_group_id}/repositories/{repository_id}",
	"/orgs/{org}/actions/runner-groups/{runner_group_id}/runners",
	"/orgs/{org}/actions/runner-groups/{runner_group_id}/runners/{runner_id}",
	"/orgs/{org}/actions/runners",
	"/orgs/{org}/actions/runners/downloads",
	"/orgs/{org}/actions/runners/generate-jitconfig",
	"/orgs/{org}/actions/runners/registration-token",
	"/orgs/{org}/actions/runners/remove-token",
	"/orgs/{org}/actions/runners/{runner_id}",
	"/orgs/{org}/actions/runners/{runner_id}/labels",
	"/orgs/{org}/hooks/{hook_id}/deliveries",
	"/orgs/{org}/hooks/{hook_id}/deliveries/{delivery_id}",
	"/orgs/{org}/hooks/{hook_id}/deliveries/{delivery_id}/attempts",
	"/orgs/{org}/installation",
	"/repos/{owner}/{repo}",
	"/repos/{owner}/{repo}/actions/jobs/{job_id}",
	"/repos/{owner}/{repo}/actions/runners",
	"/repos/{owner}/{repo}/actions/runners/downloads",
	"/repos/{owner}/{repo}/actions/runners/generate-jitconfig",
	"/repos/{owner}/{repo}/actions/runners/registration-token",
	"/repos/{owner}/{repo}/actions/runners/remove-token",
	"/repos/{owner}/{repo}/actions/runners/{runner_id}",
	"/repos/{owner}/{repo}/actions/runners/{runner_id}/labels",
	"/repos/{owner}/{repo}/actions/runs",
	"/repos/{owner}/{repo}/installation",
)

type route struct {
	template string
	segments []string // "" for a parameter
}

func compileRoutes(templates ...string) []route {
	rs := make([]route, len(templates))
	for i, t := range templates {
		segs := strings.Split(strings.Trim(t, "/"), "/")
		for j, s := range segs {
			if strings.HasPrefix(s, "{") {
				segs[j] = ""
			}
		}
		rs[i] = route{template: t, segments: segs}
	}
	return rs
}

// routeOf returns the template of an API path (without the base URL's path
// prefix). Where two templates match, the one with more literal segments
// wins (".../runners/downloads" over ".../runners/{runner_id}").
func routeOf(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestScore := routeOther, -1
	for _, r := range routes {
		if len(r.segments) != len(segs) {
			continue
		}
		score := 0
		for i, s := range r.segments {
			switch {
			case s == "":
				if segs[i] == "" {
					score = -1
				}
			case s == segs[i]:
				score++
			default:
				score = -1
			}
			if score < 0 {
				break
			}
		}
		if score > bestScore {
			best, bestScore = r.template, score
		}
	}
	return best
}

// isAppRoute tells whether a path is authenticated as the App itself (JWT)
// rather than as the installation: those calls have a rate limit of their own.
func isAppRoute(path string) bool {
	p := strings.Trim(path, "/")
	return p == "app" || strings.HasPrefix(p, "app/")
}
