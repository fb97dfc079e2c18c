package mvcc

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// The responses below come with their header in the same allocation:
// the two live and die together, and every put, range and txn saves an
// allocation (the request path allocates ~100 objects per put, each one
// paid again in GC work).

// withHeader allocates a response and its header as one object; attach
// points the response at the header.
func withHeader[R any](attach func(*R, *pb.ResponseHeader)) *R {
	x := new(struct {
		resp R
		hdr  pb.ResponseHeader
	})
	attach(&x.resp, &x.hdr)
	return &x.resp
}

func newPutResponse() *pb.PutResponse {
	return withHeader(func(r *pb.PutResponse, h *pb.ResponseHeader) { r.Header = h })
}

func newDeleteRangeResponse() *pb.DeleteRangeResponse {
	return withHeader(func(r *pb.DeleteRangeResponse, h *pb.ResponseHeader) { r.Header = h })
}

func newRangeResponse() *pb.RangeResponse {
	return withHeader(func(r *pb.RangeResponse, h *pb.ResponseHeader) { r.Header = h })
}

func newTxnResponse() *pb.TxnResponse {
	return withHeader(func(r *pb.TxnResponse, h *pb.ResponseHeader) { r.Header = h })
}
