package rmctl

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/envdoc"
)

// The variable names the tests set, as Env's envconfig tags spell them.
const (
	EnvURL   = "RM_API_URL"
	EnvToken = "RM_API_TOKEN"
)

// Every variable of Env is a row of docs/configuration.md read by rmctl, or
// by every binary (the admin API's token, which the scheduler reads too).
func TestEnvironmentIsDocumented(t *testing.T) {
	t.Parallel()
	vars := service.EnvVariables("", &Env{})
	require.ElementsMatch(t, []string{EnvURL, EnvToken}, vars)
	var own []string
	for _, v := range vars {
		if !slices.Contains(envdoc.Documented(t, envdoc.Every), v) {
			own = append(own, v)
		}
	}
	slices.Sort(own)
	require.Equal(t, own, envdoc.Documented(t, "rmctl"))
}

// ReadEnv reads the process's environment into Env.
func TestReadEnv(t *testing.T) {
	t.Setenv(EnvURL, "http://127.0.0.1:18081")
	t.Setenv(EnvToken, "from-the-environment")
	env, err := ReadEnv()
	require.NoError(t, err)
	require.Equal(t, Env{URL: "http://127.0.0.1:18081", Token: "from-the-environment"}, env)
}
