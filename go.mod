module github.com/troupedb/troupe

go 1.26.8

require go.etcd.io/raft/v3 v3.7.0

require (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc // indirect
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
