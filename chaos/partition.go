package chaos

// Partitioner is a Cluster whose members can be cut from each other by the
// network while their processes keep running (for example each member in a
// network namespace of its own, cut with blackhole routes): the members go
// on with their clocks and clients may still reach them, unlike a Pauser's
// frozen member.
type Partitioner interface {
	// Isolate cuts member i from every other member, both ways.
	Isolate(i int) error
	// PartitionPair cuts members i and j from each other, both ways;
	// each still reaches the rest.
	PartitionPair(i, j int) error
	// Heal undoes every cut involving member i.
	Heal(i int) error
}
