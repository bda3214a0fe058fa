//! The data format: which shape of stored records, Raft log entries, commands, snapshots, node
//! directories and internode requests this version writes and reads. Every process of one running cluster must be of one
//! format: a replica of another would decode entries otherwise than the rest, or not at all. Data
//! directories carry it in a `format` file (checked before any process opens one, `ignifuge`'s
//! `format.rs`), and every internode request carries it and is refused by a node of another
//! format (`ignifuge_rpc::InternodeAuth`).

/// The data format of this version (a decimal number, written as text).
///
/// 2: Raft ids derived from node names and the cluster layout stored in the metadata. Directories
/// made before (no format file; Raft ids by position) cannot be restarted by this version.
/// 3: writes name their bucket's incarnation, snapshots are files: the Raft log of format 2 holds
/// commands this version cannot decode, so a format-2 directory is refused rather than half-started.
/// 4: every node a metadata voter (format 3 stored 3 voters and 3 learners as its layout, which
/// this version would not change by itself).
/// 6: object records and Raft log entries keep inline bodies raw after their JSON
/// (`ignifuge_meta::stored`): an older version cannot read them, and replicas that applied an
/// entry before the upgrade would hold other bytes than those applying it after (digests differ).
/// Storage nodes' own directories carry the format file from this release on (format 6
/// directories made before it have none: `ignifuge dev` marks its own, a node run by hand says
/// how to mark it).
/// 7: Raft snapshot files are compressed (`ignifuge_raft::snapshot_file`). This version reads
/// everything format 6 wrote, so a format-6 directory is upgraded in place when opened (marked
/// 7, nothing rewritten); a format-6 version refuses a format-7 directory, so a downgrade cannot
/// start a replica that would be sent a snapshot it cannot read. Replicas of both versions in
/// one running cluster are not supported: stop every process, then start the new version.
/// 8: small objects are packed (`Command::PutPacked`, `DataLocation::Packed`, the pack keys of
/// `ignifuge_meta::keys`): a format-7 version cannot decode a record or a log entry naming a
/// pack. Formats 6 and 7 are upgraded in place as above, and a format-7 version refuses a
/// format-8 directory.
/// 9: packs are compacted (`Command::RepackObjects`), and a pack's member keys name the version
/// holding the slot (`ignifuge_meta::PackMember`): a format-8 version cannot decode the command.
/// Formats 6 to 8 are upgraded in place; packs written before format 9 keep empty member keys
/// and are never compacted (their objects are freed as before, with their last object).
/// 10: the metadata leader's time on overwrites (`leader_ms` of `Command::PutObject` and its
/// kin) dates the garbage they make, and parts carry the leader's start tickets
/// (`PartData::began`): a format-9 version would decode such entries without those fields and
/// apply them otherwise (garbage dated by a gateway's clock, parts ordered by gateway clocks),
/// so its replicas would differ from the others. Formats 6 to 9 are upgraded in place; a format-9
/// version refuses a format-10 directory.
/// 11: the metadata leader marks each proposal it appends as aged by log entries too
/// (`Proposal::aged_by_entries`: its id is remembered for 100,000 entries as well as 10 minutes
/// of the state machine's clock); a format-10 version would apply such entries by the clock
/// alone, so its replicas would forget ids the others keep. Entries appended before are applied
/// as they were. Formats 6 to 10 are upgraded in place; a format-10 version refuses a format-11
/// directory.
/// 12: access keys can be revoked (`Command::DeleteAccessKey`): a format-11 version cannot decode
/// the command. Formats 6 to 11 are upgraded in place; a format-11 version refuses a format-12
/// directory.
/// 13: reads in progress hold the garbage they stream (`Command::HoldGarbage`,
/// `GarbageRecord::held_ms`): a format-12 version cannot decode the command. Formats 6 to 12 are
/// upgraded in place; a format-12 version refuses a format-13 directory.
/// 14: leases count their tenures and a repair names the one it was surveyed in
/// (`LeaseRecord::epoch`, `Command::TakeLease::tenures`, `ShardReplacement::lease`): a format-13
/// version would decode such entries without those fields and apply them otherwise (a fenced
/// repair applied, lease records without their tenure), so its replicas would differ from the
/// others. Entries appended before are applied as they were. Formats 6 to 13 are upgraded in
/// place; a format-13 version refuses a format-14 directory.
/// 15: a repair round's report names the lease's tenure it ran in, and is recorded only in it
/// (`RepairReport::lease`): a format-14 version would record a stalled round's report over a
/// newer one where the others refuse it, so its replicas would differ. Entries appended before
/// are applied as they were (a report without a tenure is recorded). Formats 6 to 14 are
/// upgraded in place; a format-14 version refuses a format-15 directory.
/// 16: internode requests carry their sender's format, covered by their MAC, and a node refuses
/// a request of another format (`ignifuge_rpc::InternodeAuth`): nothing stored changed, but a
/// format-15 process signs without a format, so this version refuses its requests (403) and it
/// refuses this version's. Formats 6 to 15 are upgraded in place; a format-15 version refuses a
/// format-16 directory.
pub const DATA_FORMAT: &str = "16";
