package bus

import (
	"fmt"
	"hash/fnv"
	"strconv"
)

// Partitions. A deployment with n > 1 partitions has the NATS server map
// every command subject cmd.wallet.<id>.<action> to
// cmd.part.<p>.<id>.<action>, p = PartitionOf(id, n), with the mapping
// PartitionMapping returns; each writer serves the partitions it owns. The
// publisher (wallet_server) never knows: it keeps sending to
// cmd.wallet.<id>.<action>. With one partition there is no mapping and the
// writer serves CommandSubjects itself.

// PartitionSubjects is the subject filter the writer of partition p of n
// serves.
func PartitionSubjects(p, n int) string {
	if n <= 1 {
		return CommandSubjects
	}
	return "cmd.part." + strconv.Itoa(p) + ".*.*"
}

// PartitionMapping is the NATS server subject mapping (source, destination)
// that routes each wallet's commands to its partition among n.
func PartitionMapping(n int) (from, to string) {
	return CommandSubjects, fmt.Sprintf("cmd.part.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(2)}}", n)
}

// PartitionOf is walletID's partition among n, computed exactly as the
// server's partition(n,1) does: FNV-1a (32 bits) of the id, modulo n.
func PartitionOf(walletID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(walletID)) //nolint:errcheck // hash writes never fail
	return int(h.Sum32() % uint32(n))
}
