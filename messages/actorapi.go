package messages

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NewKVError converts err, as an etcdserverpb.KVServer would return it, into
// the KVError of a KVResponse: a gRPC status error keeps its code and
// message (so rpctypes errors such as ErrGRPCEmptyKey survive the trip),
// context errors become Canceled / DeadlineExceeded as gRPC reports them,
// and any other error becomes Unknown with its text, as a gRPC server would.
// NewKVError(nil) is nil.
func NewKVError(err error) *KVError {
	if err == nil {
		return nil
	}
	var s *status.Status
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			s = st
		} else {
			s = status.FromContextError(err)
		}
	default:
		s, _ = status.FromError(err) // Unknown with err.Error() when not a status
	}
	return &KVError{Code: uint32(s.Code()), Message: s.Message()}
}

// Err turns e back into the gRPC status error it was made from:
// errors.Is(e.Err(), rpctypes.ErrGRPCEmptyKey) holds when e carries that
// error's code and message, and rpctypes.Error maps it as clientv3 does.
// A nil e, or one with code OK, is a nil error.
func (e *KVError) Err() error {
	if e == nil || codes.Code(e.GetCode()) == codes.OK {
		return nil
	}
	return status.Error(codes.Code(e.GetCode()), e.GetMessage())
}

// NewKVErrorResponse is the KVResponse with id that reports err.
func NewKVErrorResponse(id uint64, err error) *KVResponse {
	return &KVResponse{Id: id, Result: &KVResponse_Error{Error: NewKVError(err)}}
}
