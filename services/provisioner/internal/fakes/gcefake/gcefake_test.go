package gcefake_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"

	"github.com/runner-manager/runner-manager/services/provisioner/internal/fakes/gcefake"
)

func client(t *testing.T) (*gcefake.Server, *compute.InstancesClient) {
	t.Helper()
	s := gcefake.New()
	t.Cleanup(s.Close)
	c, err := compute.NewInstancesRESTClient(context.Background(), option.WithEndpoint(s.URL()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return s, c
}

func instance(name string, labels map[string]string) *computepb.Instance {
	return &computepb.Instance{
		Name: proto.String(name), MachineType: proto.String("zones/z-a/machineTypes/e2-small"), Labels: labels,
		Disks: []*computepb.AttachedDisk{{Boot: proto.Bool(true), InitializeParams: &computepb.AttachedDiskInitializeParams{
			SourceImage: proto.String("projects/p/global/images/family/f")}}},
		NetworkInterfaces: []*computepb.NetworkInterface{{}},
	}
}

func status(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func TestRequestIDAndConflict(t *testing.T) {
	t.Parallel()
	s, c := client(t)
	ctx := context.Background()
	req := &computepb.InsertInstanceRequest{Project: "p", Zone: "z-a", RequestId: proto.String("r1"), InstanceResource: instance("vm-1", nil)}
	op1, err := c.Insert(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	op2, err := c.Insert(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if op1.Name() != op2.Name() || len(s.Instances()) != 1 {
		t.Errorf("the same requestId: operations %s and %s, %d instances", op1.Name(), op2.Name(), len(s.Instances()))
	}
	if err := op1.Wait(ctx); err != nil || !op1.Done() {
		t.Errorf("Wait: %v, done %v", err, op1.Done())
	}
	req.RequestId = proto.String("r2")
	if _, err := c.Insert(ctx, req); status(err) != http.StatusConflict {
		t.Errorf("insert of an existing name: %v, want 409", err)
	}
}

func TestListFilter(t *testing.T) {
	t.Parallel()
	s, c := client(t)
	ctx := context.Background()
	s.Put("p", "z-a", instance("a", map[string]string{"m": "x"}))
	s.Put("p", "z-a", instance("b", map[string]string{"m": "y"}))
	for filter, want := range map[string]int{
		`labels.m = "x"`:                        1,
		`labels.m = x`:                          1,
		`(labels.m = "y") AND (labels.n = "z")`: 0,
		``:                                      2,
		`name = "a"`:                            -1,
		`labels.m != "x"`:                       -1,
		`labels.m = "x" OR labels.m = "y"`:      -1,
	} {
		it := c.List(ctx, &computepb.ListInstancesRequest{Project: "p", Zone: "z-a", Filter: proto.String(filter)})
		n := 0
		var err error
		for {
			_, err = it.Next()
			if err != nil {
				break
			}
			n++
		}
		switch {
		case want < 0 && status(err) != http.StatusBadRequest:
			t.Errorf("filter %q: %v, want 400", filter, err)
		case want >= 0 && (!errors.Is(err, iterator.Done) || n != want):
			t.Errorf("filter %q: %d instances (%v), want %d", filter, n, err, want)
		}
	}
}
