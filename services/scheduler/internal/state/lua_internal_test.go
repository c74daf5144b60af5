package state

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/keys"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

// The key names the scripts build are those of libs/keys, for a manager
// name that needs quoting in Lua too.
func TestScriptKeysAreLibsKeys(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	for _, k := range []keys.Keys{keys.New(redistest.NewName("lk")), keys.New(`a"b\c` + "\u00e9")} {
		sc := redis.NewScript(keysTable(k) + `
return {rkey('r-1'), pkey('docker'), jkey('42'), ukey('1700000000'), RETRY,
  horphan('r-2'), hlisted('aws'), hlist('cmd-1'), hghorphans('org/x'), habsent('org/y'),
  GKEY.runners('g'), GKEY.demand('g'), GKEY.free('g'), GKEY.backoff('g'), GKEY.create_failures('g'), GKEY.mode('g')}`)
		got, err := sc.Run(context.Background(), rdb, nil).StringSlice()
		require.NoError(t, err)
		want := []string{k.Runner("r-1"), k.Provision("docker"), k.Job(42), k.Usage(1_700_000_000), k.Retry(),
			k.HealthOrphan("r-2"), k.HealthListed("aws"), k.HealthList("cmd-1"), k.HealthGitHubOrphans("org/x"), k.HealthAbsent("org/y"),
			k.GroupRunners("g"), k.GroupDemand("g"), k.GroupFree("g"), k.GroupBackoff("g"), k.GroupCreateFailures("g"), k.GroupMode("g")}
		require.Equal(t, want, got)
	}
}
