package etcdapi

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// maxStreamChunkBytes bounds the keys and values of one RangeStream
// answer. gRPC encodes a message into a pooled buffer; its pool keeps
// buffers of 1 MiB and below by size class, but above that reuses one
// only when it is at least as large as the next message, so chunks of
// --max-request-bytes (1.5 MiB, etcd 3.7's target), each a little
// larger or smaller than the last, allocated a new buffer for about
// every other chunk: 500 MB of garbage for a 1 GiB stream, which the GC
// target lets pile up. Under 1 MiB with room for the header, count and
// the framing, every chunk reuses a pooled buffer.
const maxStreamChunkBytes = 1<<20 - 256

// Errors etcd 3.7 answers a RangeStream it does not serve with: the
// chunks come in key order straight from the index, so another order or
// a filter would need the whole result first.
var (
	errStreamSort    = status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")
	errStreamFilters = status.Error(codes.Unimplemented, "RangeStream does not support revision filters")
)

// RangeStream is etcd 3.7's streaming Range: the keys of the range at one
// revision, in chunks of at most --max-request-bytes or just under 1 MiB,
// whichever is smaller (etcd 3.7 aims at --max-request-bytes; see
// maxStreamChunkBytes), read from the backend one chunk at a time, so a
// request holds one chunk and its encoding, whatever the range's size. Each chunk
// is read after gRPC took the previous one (Send waits for the stream's
// flow control), so the server never reads ahead of the client.
//
// As etcd 3.7: merging the answers gives Range's answer; the header,
// count and more come on the last answer only; count_only is one answer;
// sort orders other than by key ascending and revision filters are
// Unimplemented; permissions are Range's, checked before the first
// chunk. Beyond etcd, which checks the auth revision once after the last
// chunk, a change of the auth state ends the stream before the next
// chunk with the same error (ErrGRPCAuthOldRevision), so a revoked
// permission stops the data flowing.
func (s *KV) RangeStream(req *pb.RangeRequest, stream pb.KV_RangeStreamServer) error {
	if err := mvcc.ValidateRange(req); err != nil {
		return toGRPC(err)
	}
	if req.SortOrder != pb.RangeRequest_NONE &&
		(req.SortTarget != pb.RangeRequest_KEY || req.SortOrder != pb.RangeRequest_ASCEND) {
		return errStreamSort
	}
	if req.MinModRevision != 0 || req.MaxModRevision != 0 || req.MinCreateRevision != 0 || req.MaxCreateRevision != 0 {
		return errStreamFilters
	}
	ctx := stream.Context()
	st, ai, err := s.rangeStore(ctx, req)
	if err != nil {
		return err
	}
	if req.CountOnly {
		return s.streamCount(st, req, ai, stream)
	}
	r, err := st.ReadChunks(req)
	if err != nil {
		return toGRPC(err)
	}
	chunkBytes := maxStreamChunkBytes
	if b := s.cfg.MaxRequestBytes; b > 0 && b < chunkBytes {
		chunkBytes = b
	}
	for !r.Done() {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		kvs, err := r.Next(chunkBytes)
		if err != nil {
			return toGRPC(err)
		}
		out := &pb.RangeResponse{Kvs: kvs}
		if r.Done() {
			if err := s.finish(r, req, out); err != nil {
				return err
			}
		}
		if err := s.cfg.Auth.fresh(ai); err != nil {
			return err
		}
		if err := stream.Send(&pb.RangeStreamResponse{RangeResponse: out}); err != nil {
			return err
		}
	}
	return nil
}

// finish fills the last answer of a stream: the header at the revision
// the stream began at, the count of the whole range and whether the limit
// cut it.
func (s *KV) finish(r *mvcc.ChunkReader, req *pb.RangeRequest, out *pb.RangeResponse) error {
	count, err := r.Count()
	if err != nil {
		return toGRPC(err)
	}
	out.Header = &pb.ResponseHeader{Revision: r.Rev()}
	s.fill(out.Header)
	out.Count = count
	out.More = req.Limit > 0 && count > req.Limit
	return nil
}

// streamCount answers a count_only RangeStream with one answer: the
// header and the count, as etcd 3.7.
func (s *KV) streamCount(st *mvcc.Store, req *pb.RangeRequest, ai auth.Info, stream pb.KV_RangeStreamServer) error {
	resp, err := st.Range(req)
	if err != nil {
		return toGRPC(err)
	}
	if err := s.cfg.Auth.fresh(ai); err != nil {
		return err
	}
	out := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: resp.Header.Revision}, Count: resp.Count}
	s.fill(out.Header)
	return stream.Send(&pb.RangeStreamResponse{RangeResponse: out})
}
