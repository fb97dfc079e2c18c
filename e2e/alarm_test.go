package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// jsonStatusErrors is the part of `etcdctl endpoint status -w json` that
// carries the alarms.
type jsonStatusErrors struct {
	Status struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Errors []string `json:"errors"`
	} `json:"Status"`
}

func statusErrors(t *testing.T, s *e2etest.Server) (member uint64, errs []string) {
	t.Helper()
	var st []jsonStatusErrors
	decodeJSON(t, etcdctl(t, s, "", "endpoint", "status", "-w", "json"), &st)
	if len(st) != 1 {
		t.Fatalf("endpoint status: %d entries", len(st))
	}
	return st[0].Status.Header.MemberID, st[0].Status.Errors
}

// fillQuota puts 16 KiB values until the server refuses one; it returns
// that error.
func fillQuota(t *testing.T, cli *clientv3.Client) error {
	t.Helper()
	value := strings.Repeat("q", 16<<10)
	for i := range 400 {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("fill/%04d", i), value); err != nil {
			return err
		}
	}
	t.Fatal("400 puts of 16 KiB fit in a 1 MiB quota")
	return nil
}

// TestAlarmNoSpace walks etcd's NOSPACE story: the quota is passed, the
// alarm is raised and refuses every write that adds data (even once the
// file is small again) while deletes, compaction and defrag work; the
// alarm survives a restart; `etcdctl alarm disarm` lets writes in again.
func TestAlarmNoSpace(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Args: []string{"--quota-backend-bytes", "1048576"}})
	cli := s.Client(t)
	requireErr(t, fillQuota(t, cli), rpctypes.ErrGRPCNoSpace)

	id, errs := statusErrors(t, s)
	want := fmt.Sprintf("memberID:%d alarm:NOSPACE ", id)
	if len(errs) != 1 || errs[0] != want {
		t.Fatalf("status errors %q, want [%q]", errs, want)
	}
	if out := etcdctl(t, s, "", "alarm", "list"); out != want+"\n" {
		t.Fatalf("alarm list: %q, want %q", out, want+"\n")
	}
	var list struct {
		Header jsonHeader `json:"header"`
		Alarms []struct {
			MemberID uint64 `json:"memberID"`
			Alarm    int    `json:"alarm"`
		} `json:"alarms"`
	}
	decodeJSON(t, etcdctl(t, s, "", "alarm", "list", "-w", "json"), &list)
	if list.Header.MemberID != id || list.Header.Revision == 0 || len(list.Alarms) != 1 || list.Alarms[0].MemberID != id || list.Alarms[0].Alarm != 1 {
		t.Fatalf("alarm list -w json: %+v", list)
	}
	if a := httpDo(t, "GET", s.Endpoint()+"/health"); a.code != http.StatusServiceUnavailable || a.body != `{"health":"false","reason":"ALARM NOSPACE"}`+"\n" {
		t.Fatalf("/health with an alarm: %d %s", a.code, a.body)
	}
	// Writes that add data are refused; a txn of deletes is not.
	_, err := cli.Put(ctx(t), "small", "v")
	requireErr(t, err, rpctypes.ErrGRPCNoSpace)
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpPut("t", "v")).Commit()
	requireErr(t, err, rpctypes.ErrGRPCNoSpace)
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpDelete("fill/0000")).Commit()
	must(t, err)
	del, err := cli.Delete(ctx(t), "fill/", clientv3.WithPrefix())
	must(t, err)
	_, err = cli.Compact(ctx(t), del.Header.Revision, clientv3.WithCompactPhysical())
	must(t, err)
	etcdctl(t, s, "", "defrag")
	_, err = cli.Put(ctx(t), "small", "v")
	requireErr(t, err, rpctypes.ErrGRPCNoSpace)

	s.Restart()
	cli = s.Client(t)
	if out := etcdctl(t, s, "", "alarm", "list"); out != want+"\n" {
		t.Fatalf("alarm list after restart: %q, want %q", out, want+"\n")
	}
	_, err = cli.Put(ctx(t), "small", "v")
	requireErr(t, err, rpctypes.ErrGRPCNoSpace)

	if out := etcdctl(t, s, "", "alarm", "disarm"); out != want+"\n" {
		t.Fatalf("alarm disarm: %q, want %q", out, want+"\n")
	}
	if out := etcdctl(t, s, "", "alarm", "list"); out != "" {
		t.Fatalf("alarm list after disarm: %q", out)
	}
	if out := etcdctl(t, s, "", "alarm", "disarm", "-w", "json"); out != "{}\n" {
		t.Fatalf("alarm disarm with no alarm: %q", out)
	}
	_, err = cli.Put(ctx(t), "small", "v")
	must(t, err)
	if _, errs := statusErrors(t, s); len(errs) != 0 {
		t.Fatalf("status errors after disarm: %q", errs)
	}
	waitHealthy(t, s)
}

func waitHealthy(t *testing.T, s *e2etest.Server) {
	t.Helper()
	var a httpAnswer
	for range 50 {
		if a = httpDo(t, "GET", s.Endpoint()+"/health"); a.code == http.StatusOK {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/health: %d %s", a.code, a.body)
}

// TestAlarmCorrupt raises a CORRUPT alarm by hand: every write is refused
// with etcd's ErrGRPCCorrupt, reads are served, and disarming it ends that.
func TestAlarmCorrupt(t *testing.T) {
	s, cli := startServer(t)
	_, err := cli.Put(ctx(t), "k", "v")
	must(t, err)
	mc := pb.NewMaintenanceClient(cli.ActiveConnection())
	st, err := cli.Status(ctx(t), s.Endpoint())
	must(t, err)
	id := st.Header.MemberId
	resp, err := mc.Alarm(ctx(t), &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT})
	must(t, err)
	if len(resp.Alarms) != 1 || resp.Alarms[0].MemberID != id || resp.Alarms[0].Alarm != pb.AlarmType_CORRUPT || resp.Header.GetMemberId() != id || resp.Header.GetRevision() != 2 {
		t.Fatalf("activate: %v", resp)
	}
	// Activating it again answers it again.
	resp, err = mc.Alarm(ctx(t), &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT})
	must(t, err)
	if len(resp.Alarms) != 1 {
		t.Fatalf("activate again: %v", resp)
	}
	_, err = cli.Put(ctx(t), "k", "v2")
	requireErr(t, err, rpctypes.ErrGRPCCorrupt)
	_, err = cli.Delete(ctx(t), "k")
	requireErr(t, err, rpctypes.ErrGRPCCorrupt)
	_, err = cli.Compact(ctx(t), 1)
	requireErr(t, err, rpctypes.ErrGRPCCorrupt)
	got, err := cli.Get(ctx(t), "k")
	must(t, err)
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("get under CORRUPT: %v", got.Kvs)
	}
	want := fmt.Sprintf("memberID:%d alarm:CORRUPT \n", id)
	if out := etcdctl(t, s, "", "alarm", "list"); out != want {
		t.Fatalf("alarm list: %q, want %q", out, want)
	}
	// GET of one type lists only that type.
	resp, err = mc.Alarm(ctx(t), &pb.AlarmRequest{Action: pb.AlarmRequest_GET, Alarm: pb.AlarmType_NOSPACE})
	must(t, err)
	if len(resp.Alarms) != 0 {
		t.Fatalf("GET NOSPACE: %v", resp)
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dr, err := cli.AlarmDisarm(c, &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType_CORRUPT})
	must(t, err)
	if len(dr.Alarms) != 1 {
		t.Fatalf("disarm: %v", dr)
	}
	_, err = cli.Put(ctx(t), "k", "v2")
	must(t, err)
}

// TestAlarmCluster: an alarm raised through one member is every member's:
// the others list it and refuse writes that add data; a disarm through a
// third member lifts it everywhere.
func TestAlarmCluster(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: 3})
	cli0, cli1, cli2 := c.MemberClient(t, 0), c.MemberClient(t, 1), c.MemberClient(t, 2)
	st, err := cli0.Status(ctx(t), c.Member(0).Endpoint())
	must(t, err)
	id := st.Header.MemberId
	_, err = pb.NewMaintenanceClient(cli0.ActiveConnection()).Alarm(ctx(t),
		&pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_NOSPACE})
	must(t, err)
	want := fmt.Sprintf("memberID:%d alarm:NOSPACE \n", id)
	for i := range c.Size() {
		if out := etcdctl(t, c.Member(i), "", "alarm", "list"); out != want {
			t.Fatalf("member %d: alarm list %q, want %q", i, out, want)
		}
	}
	for i, cli := range []*clientv3.Client{cli1, cli2} {
		_, err = cli.Put(ctx(t), "k", "v")
		requireErr(t, err, rpctypes.ErrGRPCNoSpace)
		if _, err := cli.Delete(ctx(t), "k"); err != nil {
			t.Fatalf("member %d: delete under NOSPACE: %v", i+1, err)
		}
	}
	if out := etcdctl(t, c.Member(2), "", "alarm", "disarm"); out != want {
		t.Fatalf("disarm: %q", out)
	}
	for _, cli := range []*clientv3.Client{cli0, cli1, cli2} {
		_, err = cli.Put(ctx(t), "k", "v")
		must(t, err)
	}
}
