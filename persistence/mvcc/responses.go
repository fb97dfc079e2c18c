package mvcc

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// The responses below come with their header in the same allocation:
// the two live and die together, and every put, range and txn saves an
// allocation (the request path allocates ~100 objects per put, each one
// paid again in GC work).

func newPutResponse() *pb.PutResponse {
	x := new(struct {
		resp pb.PutResponse
		hdr  pb.ResponseHeader
	})
	x.resp.Header = &x.hdr
	return &x.resp
}

func newDeleteRangeResponse() *pb.DeleteRangeResponse {
	x := new(struct {
		resp pb.DeleteRangeResponse
		hdr  pb.ResponseHeader
	})
	x.resp.Header = &x.hdr
	return &x.resp
}

func newRangeResponse() *pb.RangeResponse {
	x := new(struct {
		resp pb.RangeResponse
		hdr  pb.ResponseHeader
	})
	x.resp.Header = &x.hdr
	return &x.resp
}

func newTxnResponse() *pb.TxnResponse {
	x := new(struct {
		resp pb.TxnResponse
		hdr  pb.ResponseHeader
	})
	x.resp.Header = &x.hdr
	return &x.resp
}
