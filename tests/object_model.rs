//! Property test: random sequences of alloc / destroy / lookup / hold against
//! a reference model of upstream's ID and refcount rules.

use iommufd_rs::errno::*;
use iommufd_rs::ioas::Ioas;
use iommufd_rs::object::{ObjRef, ObjectTable, Payload};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Op {
    Alloc { publish: bool },
    Destroy(u32),
    Hold(u32),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop_oneof![3 => Just(true), 1 => Just(false)].prop_map(|publish| Op::Alloc { publish }),
        3 => (0u32..12).prop_map(Op::Destroy),
        2 => (0u32..12).prop_map(Op::Hold),
        2 => (0usize..8).prop_map(Op::Release),
    ]
}

proptest! {
    #[test]
    fn table_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        let table = ObjectTable::new().unwrap();
        let mut live: BTreeSet<u32> = BTreeSet::new();
        let mut holds: Vec<(u32, ObjRef)> = Vec::new();
        let mut held: BTreeMap<u32, usize> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Alloc { publish } => {
                    let want = (1..).find(|i| !live.contains(i)).unwrap();
                    let new = table.reserve(Payload::Ioas(Ioas::new())).unwrap();
                    prop_assert_eq!(new.id(), want);
                    // Reserved but unpublished IDs are invisible.
                    prop_assert_eq!(table.get(want, None).err(), Some(ENOENT));
                    if publish {
                        new.publish();
                        live.insert(want);
                    } else {
                        drop(new);
                    }
                }
                Op::Destroy(id) => {
                    let expect = if !live.contains(&id) {
                        Err(ENOENT)
                    } else if held.get(&id).copied().unwrap_or(0) > 0 {
                        Err(EBUSY)
                    } else {
                        Ok(())
                    };
                    prop_assert_eq!(table.remove(id).map(drop), expect);
                    if expect.is_ok() {
                        live.remove(&id);
                    }
                }
                Op::Hold(id) => match table.get(id, None) {
                    Ok(r) => {
                        prop_assert!(live.contains(&id));
                        *held.entry(id).or_default() += 1;
                        prop_assert_eq!(r.object().users() as usize, 1 + held[&id]);
                        holds.push((id, r));
                    }
                    Err(e) => {
                        prop_assert_eq!(e, ENOENT);
                        prop_assert!(!live.contains(&id));
                    }
                },
                Op::Release(i) => {
                    if !holds.is_empty() {
                        let (id, r) = holds.swap_remove(i % holds.len());
                        drop(r);
                        *held.get_mut(&id).unwrap() -= 1;
                    }
                }
            }
        }
        drop(holds);
        for id in live {
            prop_assert_eq!(table.remove(id).map(drop), Ok(()));
        }
    }
}
