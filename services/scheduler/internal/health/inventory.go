package health

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/runner-manager/runner-manager/libs/config"
	rmv1 "github.com/runner-manager/runner-manager/libs/gen/runnermanager/v1"
	"github.com/runner-manager/runner-manager/libs/stream"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/command"
	"github.com/runner-manager/runner-manager/services/scheduler/internal/state"
)

// listMeta is what a list command covered, kept in Redis for its inventory:
// the groups on the backend and a hash of each one's instance specification
// at the time. Only those groups, with the same specification, are compared
// with the inventory: a group added or moved since (another region, zone or
// project) may have instances the listing did not look for.
type listMeta struct {
	Backend string            `json:"backend"`
	Groups  map[string]string `json:"groups"`
}

func specHash(spec []byte) string {
	h := sha256.Sum256(spec)
	return hex.EncodeToString(h[:])
}

// groupSpecs returns, for each backend type of the configuration, its groups'
// instance specifications.
func (c *Checker) groupSpecs() (map[string]map[string][]byte, error) {
	out := map[string]map[string][]byte{}
	var errs []error
	for i := range c.cfg.RunnerGroups {
		g := &c.cfg.RunnerGroups[i]
		spec, err := g.InstanceSpecJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("instance spec of group %s: %w", g.Name, err))
			continue
		}
		if out[g.Backend.Type] == nil {
			out[g.Backend.Type] = map[string][]byte{}
		}
		out[g.Backend.Type][g.Name] = spec
	}
	return out, errors.Join(errs...)
}

// recordedLocations returns, by backend type, the locations that runner
// records reference but no configured group lists (a group removed, or its
// host, region, project or zones changed): the provisioner lists them too,
// so that their instances stay in sight. Sorted, without duplicates.
func recordedLocations(cfg *config.Config, recs records) map[string][]*rmv1.Location {
	configured := map[string]bool{}
	for i := range cfg.RunnerGroups {
		for _, loc := range groupLocations(&cfg.RunnerGroups[i]) {
			configured[cfg.RunnerGroups[i].Backend.Type+" "+locationKey(loc)] = true
		}
	}
	out := map[string][]*rmv1.Location{}
	seen := map[string]bool{}
	names := make([]string, 0, len(recs.byName))
	for n := range recs.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := recs.byName[n]
		if len(r.Location) == 0 || r.Backend == "" {
			continue
		}
		k := r.Backend + " " + locationKey(r.Location)
		if configured[k] || seen[k] {
			continue
		}
		seen[k] = true
		out[r.Backend] = append(out[r.Backend], &rmv1.Location{Values: r.Location})
	}
	return out
}

// groupLocations are the locations a configured group's instances can be
// at (the keys of the provisioners' Created locations).
func groupLocations(g *config.RunnerGroup) []map[string]string {
	switch g.Backend.Type {
	case config.BackendDocker:
		host := ""
		if g.Backend.Docker != nil {
			host = g.Backend.Docker.Host
		}
		return []map[string]string{{"host": host}}
	case config.BackendAWS:
		if g.Backend.AWS != nil {
			return []map[string]string{{"region": g.Backend.AWS.Region}}
		}
	case config.BackendGCP:
		if g.Backend.GCP != nil {
			var out []map[string]string
			for _, z := range g.Backend.GCP.Zones {
				out = append(out, map[string]string{"project": g.Backend.GCP.Project, "zone": z})
			}
			return out
		}
	}
	return nil
}

// locationKey is a stable key of a location.
func locationKey(loc map[string]string) string {
	keys := make([]string, 0, len(loc))
	for k := range loc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b, _ := json.Marshal(struct {
		K []string
		L map[string]string
	}{keys, loc})
	return string(b)
}

// requestInventories sends a list command to every backend type of the
// configuration, at most one per backend every half interval (checks 3, 5).
func (c *Checker) requestInventories(ctx context.Context, recs records, rep *Report) error {
	byBackend, err := c.groupSpecs()
	extra := recordedLocations(c.cfg, recs)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	backends := make([]string, 0, len(byBackend))
	for b := range byBackend {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	for _, b := range backends {
		meta := listMeta{Backend: b, Groups: map[string]string{}}
		var specs [][]byte
		names := make([]string, 0, len(byBackend[b]))
		for name := range byBackend[b] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			spec := byBackend[b][name]
			meta.Groups[name] = specHash(spec)
			if !slices.ContainsFunc(specs, func(s []byte) bool { return string(s) == string(spec) }) {
				specs = append(specs, spec)
			}
		}
		metaJSON, err := json.Marshal(meta)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode list of backend %s: %w", b, err))
			continue
		}
		pc := &rmv1.ProvisionCommand{
			CommandId: command.NewID(),
			Command:   &rmv1.ProvisionCommand_List{List: &rmv1.ListInstances{InstanceSpecs: specs, Locations: extra[b]}},
			IssuedAt:  timestamppb.New(c.store.Now()),
		}
		data, err := proto.Marshal(pc)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode list command of backend %s: %w", b, err))
			continue
		}
		interval := c.cfg.HealthCheckInterval
		sent, err := c.store.EmitList(ctx, b, state.Command{ID: pc.CommandId, Data: data, Traceparent: stream.Traceparent(ctx)},
			metaJSON, interval/2, 2*interval)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sent {
			rep.ListsSent = append(rep.ListsSent, b)
			c.log.Debug("inventory requested", "backend", b, "command_id", pc.CommandId)
		}
	}
	c.count(CheckInventory, len(rep.ListsSent))
	return errors.Join(errs...)
}

// InventoryReport is what one inventory led to.
type InventoryReport struct {
	// Ignored: the inventory answers no list command this manager knows
	// (unknown, or older than twice the interval).
	Ignored bool
	// Orphans: instances without record whose delete was emitted (check 3).
	Orphans []string
	// Vanished: runners whose instance is gone, deleting (check 5).
	Vanished []string
}

// HandleInventory acts on an inventory result (checks 3 and 5). It is meant
// for the results handler (dispatch), for a result whose outcome is an
// inventory; any other result is ignored.
func (c *Checker) HandleInventory(ctx context.Context, res *rmv1.ProvisionResult) error {
	_, err := c.Inventory(ctx, res)
	return err
}

// Inventory is HandleInventory with a report: instances older than
// time_to_start that have no record get a delete command (reason orphan);
// started, idle and busy runners of the listed groups whose instance is
// missing although they had it well before the listing get a delete command
// (reason instance_vanished). Handling the same inventory twice emits
// nothing twice.
func (c *Checker) Inventory(ctx context.Context, res *rmv1.ProvisionResult) (InventoryReport, error) {
	var rep InventoryReport
	inv := res.GetInventory()
	if inv == nil {
		return rep, nil
	}
	meta, ok, err := c.listMeta(ctx, res.GetCommandId())
	if err != nil {
		return rep, err
	}
	log := c.log.With("command_id", res.GetCommandId(), "backend", res.GetBackendType())
	if !ok {
		rep.Ignored = true
		log.Info("inventory of an unknown or expired list command ignored")
		return rep, nil
	}
	errs, err := c.deleteOrphans(ctx, inv, meta.Backend, log, &rep)
	if err != nil {
		return rep, err
	}
	errs = append(errs, c.deleteVanished(ctx, inv, meta, &rep)...)
	c.count(CheckBackendOrphan, len(rep.Orphans))
	c.count(CheckInstanceVanished, len(rep.Vanished))
	return rep, errors.Join(errs...)
}

// listMeta returns what the list command commandID covered; false when it is
// unknown, expired or unreadable.
func (c *Checker) listMeta(ctx context.Context, commandID string) (listMeta, bool, error) {
	var meta listMeta
	raw, ok, err := c.store.ListMeta(ctx, commandID)
	if err != nil || !ok {
		return meta, false, err
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return meta, false, nil
	}
	return meta, true, nil
}

// deleteOrphans is check 3: the delete of every instance of inv without a
// record, older than time_to_start. The error is one that stops the
// inventory (the records could not be read); the others are returned.
func (c *Checker) deleteOrphans(ctx context.Context, inv *rmv1.Inventory, backend string, log *slog.Logger, rep *InventoryReport) ([]error, error) {
	names := make([]string, 0, len(inv.GetInstances()))
	for _, i := range inv.GetInstances() {
		names = append(names, i.GetName())
	}
	have, err := c.store.Existing(ctx, names)
	if err != nil {
		return nil, err
	}
	now := c.store.Now()
	guard := max(c.cfg.HealthCheckInterval/2, c.cfg.Scheduler.LeaseTTL)
	var errs []error
	for _, i := range inv.GetInstances() {
		if have[i.GetName()] || i.GetName() == "" {
			continue
		}
		// A backend that gives no creation time cannot be aged: its
		// ownership label is trusted alone, rather than leak.
		if ct := i.GetCreatedAt(); ct != nil && ct.IsValid() && now.Sub(ct.AsTime()) < c.cfg.TimeToStart {
			continue
		}
		sent, err := c.store.DeleteOrphan(ctx, state.Runner{
			Name: i.GetName(), Group: i.GetGroup(), Backend: backend, InstanceID: i.GetInstanceId(),
		}, state.ReasonOrphan, guard)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sent {
			rep.Orphans = append(rep.Orphans, i.GetName())
			log.Warn("instance without record: deleting (orphan)", "runner", i.GetName(), "group", i.GetGroup(),
				"instance_id", i.GetInstanceId())
		}
	}
	return errs, nil
}

// deleteVanished is check 5: the delete of every started, idle or busy
// runner of the groups the list command covered (with the specification
// configured now) whose instance is not in inv, and was there before the
// listing (state_since older than its time minus VanishGrace).
func (c *Checker) deleteVanished(ctx context.Context, inv *rmv1.Inventory, meta listMeta, rep *InventoryReport) []error {
	ta := inv.GetTakenAt()
	if ta == nil || !ta.IsValid() || ta.AsTime().IsZero() {
		return nil
	}
	present := make(map[string]bool, len(inv.GetInstances()))
	for _, i := range inv.GetInstances() {
		present[i.GetName()] = true
	}
	backend := meta.Backend
	before := ta.AsTime().Add(-c.opt.VanishGrace)
	specs, _ := c.groupSpecs()
	groups := make([]string, 0, len(meta.Groups))
	for g, h := range meta.Groups {
		if cur, ok := specs[backend][g]; ok && specHash(cur) == h {
			groups = append(groups, g)
		}
	}
	sort.Strings(groups)
	var errs []error
	for _, g := range groups {
		runners, err := c.store.Runners(ctx, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range runners {
			// state_since of started, idle or busy is after the instance
			// existed (created result, or a job ran on it).
			if present[r.Name] || r.Backend != backend || r.StateSince.IsZero() || !r.StateSince.Before(before) {
				continue
			}
			if r.State != state.Started && r.State != state.Idle && r.State != state.Busy {
				continue
			}
			ok, err := c.requestDelete(ctx, r, []state.State{state.Started, state.Idle, state.Busy}, state.ReasonInstanceVanished)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				rep.Vanished = append(rep.Vanished, r.Name)
			}
		}
	}
	return errs
}
