package bus

import (
	"fmt"
	"hash/fnv"
	"strconv"
)

// Partitions. A deployment with n > 1 partitions has the NATS server map
// every command subject cmd.<domain>.<id>.<action> to
// cmd.part.<p>.<domain>.<id>.<action>, p = PartitionOf(id, n), with the
// mapping PartitionMapping returns (one mapping for every domain: it hashes
// the id token alone); each writer serves the partitions it owns. The
// publisher (wallet_server) never knows: it keeps sending to
// cmd.<domain>.<id>.<action>. With one partition there is no mapping and the
// writer serves CommandSubjects itself.

// PartitionSubjects is the subject filter the writer of partition p of n
// serves.
func PartitionSubjects(p, n int) string {
	if n <= 1 {
		return CommandSubjects
	}
	return "cmd." + partToken + "." + strconv.Itoa(p) + ".*.*.*"
}

// PartitionMapping is the NATS server subject mapping (source, destination)
// that routes each stream's commands to its partition among n.
func PartitionMapping(n int) (from, to string) {
	return CommandSubjects, fmt.Sprintf("cmd.%s.{{partition(%d,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}", partToken, n)
}

// PartitionConfig is the NATS server configuration holding the mapping
// for n partitions, as run.sh hands it to nats-server (wallet_writer
// partitions-conf prints it): the one place the mapping is written.
func PartitionConfig(n int) string {
	from, to := PartitionMapping(n)
	return fmt.Sprintf("# Coffer: each stream's commands go to one of %d writer partitions.\nmappings = {\n  %q: %q\n}\n", n, from, to)
}

// PartitionOf is the partition among n of the stream with this id,
// computed exactly as the server's partition(n,2) does: FNV-1a (32 bits) of
// the id token, modulo n.
func PartitionOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id)) //nolint:errcheck // hash writes never fail
	return int(h.Sum32() % uint32(n))
}
