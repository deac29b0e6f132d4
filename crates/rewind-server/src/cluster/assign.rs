//! Which node should own each shard: capacity-bounded rendezvous hashing.
//!
//! Every node computes the same assignment from the same list of live
//! nodes, with no coordination: each shard ranks the nodes by a hash of
//! (shard, node) and goes to the best-ranked node that still has room under
//! `ceil(shards / nodes)`. The cap makes the spread even (no node is
//! assigned more than the cap); the ranking makes it stable: a shard moves
//! only when its node leaves, or when a joining node ranks above it (or its
//! node's room is taken by shards that ranked it higher).

/// The node index each shard should belong to, for `shards` shards over
/// `nodes` (sorted or not: the result depends only on the set). Empty when
/// there is no node.
pub(crate) fn assign(shards: u32, nodes: &[String]) -> Vec<Option<usize>> {
    if nodes.is_empty() {
        return vec![None; shards as usize];
    }
    let cap = (shards as usize).div_ceil(nodes.len());
    let mut load = vec![0usize; nodes.len()];
    let mut ranked: Vec<usize> = (0..nodes.len()).collect();
    (0..shards)
        .map(|shard| {
            ranked.sort_by_key(|&node| std::cmp::Reverse((weight(shard, &nodes[node]), node)));
            let chosen = ranked
                .iter()
                .copied()
                .find(|&node| load[node] < cap)
                .expect("the caps hold every shard: cap * nodes >= shards");
            load[chosen] += 1;
            Some(chosen)
        })
        .collect()
}

/// The rendezvous weight of `node` for `shard`: FNV-1a 64 over the shard
/// number and the node id, finished with a mixer so close inputs spread.
fn weight(shard: u32, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in shard.to_le_bytes().iter().chain(node.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::assign;

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn loads(assignment: &[Option<usize>], nodes: usize) -> Vec<usize> {
        let mut load = vec![0; nodes];
        for node in assignment.iter().flatten() {
            load[*node] += 1;
        }
        load
    }

    #[test]
    fn every_shard_goes_to_one_node_within_the_cap() {
        for count in 1..=7 {
            let names: Vec<String> = (0..count).map(|i| format!("node-{i}")).collect();
            for shards in [1u32, 7, 64, 256, 1000] {
                let assignment = assign(shards, &names);
                assert_eq!(assignment.len(), shards as usize);
                assert!(assignment.iter().all(Option::is_some));
                let cap = (shards as usize).div_ceil(count);
                for load in loads(&assignment, count) {
                    assert!(
                        load <= cap,
                        "{load} > {cap} ({count} nodes, {shards} shards)"
                    );
                }
            }
        }
    }

    #[test]
    fn no_node_means_no_owner() {
        assert_eq!(assign(3, &[]), vec![None, None, None]);
    }

    #[test]
    fn the_order_of_the_node_list_does_not_matter() {
        let a = nodes(&["a", "b", "c"]);
        let c = nodes(&["c", "a", "b"]);
        let by_name = |names: &[String], assignment: Vec<Option<usize>>| -> Vec<String> {
            assignment
                .into_iter()
                .map(|n| names[n.unwrap()].clone())
                .collect()
        };
        assert_eq!(by_name(&a, assign(256, &a)), by_name(&c, assign(256, &c)));
    }

    #[test]
    fn a_join_or_a_leave_moves_a_bounded_share() {
        let three = nodes(&["a", "b", "c"]);
        let four = nodes(&["a", "b", "c", "d"]);
        let name = |names: &[String], n: Option<usize>| names[n.unwrap()].clone();
        let before: Vec<String> = assign(256, &three)
            .into_iter()
            .map(|n| name(&three, n))
            .collect();
        let after: Vec<String> = assign(256, &four)
            .into_iter()
            .map(|n| name(&four, n))
            .collect();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        // The ideal is the new node's share, 64; the cap's spill-over adds
        // some.
        assert!(moved >= 64, "the new node got {moved} shards");
        assert!(moved <= 2 * 64, "{moved} shards moved for one join");
        // And back: the leave moves the same shards.
        let back: Vec<String> = assign(256, &three)
            .into_iter()
            .map(|n| name(&three, n))
            .collect();
        assert_eq!(before, back);
    }
}
