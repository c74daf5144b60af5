package ec2fake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/runner-manager/runner-manager/services/provisioner/internal/fakes/ec2fake"
)

func client(t *testing.T) (*ec2fake.Server, *ec2.Client) {
	t.Helper()
	s := ec2fake.New()
	t.Cleanup(s.Close)
	c := ec2.New(ec2.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(s.URL()),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RetryMaxAttempts: 1,
	})
	return s, c
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func run(c *ec2.Client, token, userData string) (*ec2.RunInstancesOutput, error) {
	return c.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: aws.String("ami-1"), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		ClientToken: aws.String(token), UserData: aws.String(userData),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}},
	})
}

func TestClientToken(t *testing.T) {
	t.Parallel()
	s, c := client(t)
	first, err := run(c, "tok", "aGk=")
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	again, err := run(c, "tok", "aGk=")
	if err != nil {
		t.Fatalf("RunInstances again: %v", err)
	}
	if *first.Instances[0].InstanceId != *again.Instances[0].InstanceId || len(s.Instances()) != 1 {
		t.Errorf("the same token made a second instance")
	}
	if _, err := run(c, "tok", "b3RoZXI="); code(err) != "IdempotentParameterMismatch" {
		t.Errorf("same token, other user data: %v", err)
	}
	if got := s.Instances()[0].UserData; got != "hi" {
		t.Errorf("user data %q, want it decoded", got)
	}
}

func TestDescribeFiltersAndPages(t *testing.T) {
	t.Parallel()
	s, c := client(t)
	for i := range 7 {
		if _, err := run(c, "t"+string(rune('a'+i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	s.Put(ec2fake.Instance{Tags: map[string]string{"k": "other"}})
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{
		MaxResults: aws.Int32(5),
		Filters:    []types.Filter{{Name: aws.String("tag:k"), Values: []string{"v"}}},
	})
	n, pages := 0, 0
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Reservations {
			n += len(r.Instances)
		}
	}
	if n != 7 || pages != 2 {
		t.Errorf("%d instances in %d pages, want 7 in 2", n, pages)
	}
	_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}},
	})
	if code(err) != "InvalidParameterValue" {
		t.Errorf("unknown filter: %v, want InvalidParameterValue", err)
	}
}

func TestFaultsAndTerminate(t *testing.T) {
	t.Parallel()
	s, c := client(t)
	s.Inject(ec2fake.Fault{Action: "RunInstances", Code: "InsufficientInstanceCapacity", Times: 1})
	if _, err := run(c, "x", ""); code(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("RunInstances: %v, want the injected fault", err)
	}
	out, err := run(c, "x", "")
	if err != nil {
		t.Fatalf("RunInstances after the fault: %v", err)
	}
	id := out.Instances[0].InstanceId
	if _, err := c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{*id}}); err != nil {
		t.Fatal(err)
	}
	if len(s.Live()) != 0 || len(s.Instances()) != 1 {
		t.Errorf("terminate: live %d, all %d; want 0 and 1", len(s.Live()), len(s.Instances()))
	}
	_, err = c.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{"i-00000000000000000"}})
	if code(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("terminate unknown: %v", err)
	}
}
