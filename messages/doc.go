// Package messages holds the Go types of every actor message of troupe:
// plain structs for messages that never leave the process, and the types
// generated from proto/troupe/v1 for those that cross protoactor remote.
//
// Commands are imperative (Append), events past tense (Appended), queries
// Get<Noun> answered by <Noun>, and replies to commands that can fail
// <Command>Result.
package messages
