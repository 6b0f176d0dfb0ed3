use super::*;

/// xorshift64*: a small, dependency-free generator for reproducible sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn id(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// The structural invariants every operation must keep.
fn check_invariants(d: &Directory) {
    for g in d.groups.values() {
        assert!(
            !g.supervisors.is_empty(),
            "group {} lost its supervisors",
            g.id
        );
        for u in g.supervisors.iter().chain(g.members.keys()) {
            assert!(d.users.contains_key(u));
        }
    }
    for (uid, u) in &d.users {
        if let Line::Ringing { call_id } = &u.line {
            assert_eq!(d.ringing.get(call_id).map(|c| &c.member), Some(uid));
        }
    }
    for (call_id, call) in &d.ringing {
        assert_eq!(
            d.users[&call.member].line,
            Line::Ringing {
                call_id: call_id.clone()
            }
        );
        assert!(d.taken.iter().all(|(t, _)| t != call_id));
    }
    assert!(d.taken.len() <= TAKEN_CALLS_REMEMBERED_MAX);
    for (agent, sup) in &d.subscriptions {
        assert!(d.supervises_member(sup, agent));
    }
}

/// Random operations from random actors: no panic, invariants kept, refusals change nothing,
/// a locked group that had a logged-in member never becomes empty through leave or logoff.
#[test]
fn random_operations_keep_the_invariants() {
    let users = ["s1", "s2", "s3", "m1", "m2", "m3", "m4"].map(id);
    let groups = ["g1", "g2", "g3"].map(|g| GroupId::parse(g).unwrap());
    let calls = ["c1", "c2", "c3", "c4"];
    for case in 1..=300u64 {
        let mut rng = Rng(case.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut d = Directory::new();
        for u in &users {
            d.upsert_user(u.clone(), u.as_str(), Some("100")).unwrap();
        }
        for _ in 0..200 {
            let (g, a, b) = (
                rng.pick(&groups).clone(),
                rng.pick(&users).clone(),
                rng.pick(&users).clone(),
            );
            let call = *rng.pick(&calls);
            let flag = rng.coin();
            let rights = Rights {
                group_admin: rng.coin(),
            };
            let before = d.clone();
            let locked_nonempty = d
                .group(&g)
                .is_some_and(|g| g.lock_last_member && g.logged_in_count() > 0);
            let result = match rng.next() % 18 {
                0 => {
                    let kind = if flag {
                        GroupKind::Standard
                    } else {
                        GroupKind::MutualAid
                    };
                    d.create_group(g.clone(), "G", kind, rng.coin(), a)
                }
                1 => d.add_supervisor(&g, a),
                2 => d.remove_supervisor(&g, &a),
                3 | 4 => d.add_member(&g, a, flag),
                5 => d.remove_member(&g, &a),
                6 => d.set_can_leave(&g, &a, flag),
                7 => d.join(&g, &a),
                8 => d.leave(&g, &a),
                9 => d.force_logon(&g, &a, rights, &b),
                10 => d.force_logoff(&g, &a, rights, &b),
                11 => d.take_call(call, &a),
                12 => d.report_ringing(&b, call, "caller", flag),
                13 => d.report_ringing_ended(call),
                14 => d.report_forwarding(&b, flag.then_some("0600")),
                15 => d.cancel_forwarding(&a, &b),
                16 => d.subscribe(&a, &b).map(|_| Vec::new()),
                _ => d.set_lock_last_member(&g, flag),
            };
            match result {
                Err(_) => assert_eq!(d, before, "case {case}: a refusal changed something"),
                Ok(events) => {
                    let emptied = events
                        .iter()
                        .any(|e| matches!(e, GroupEvent::MemberLoggedOut { .. }));
                    if locked_nonempty && emptied {
                        assert!(d.group(&g).unwrap().logged_in_count() > 0, "case {case}");
                    }
                }
            }
            check_invariants(&d);
            for s in &users {
                assert_eq!(d.ringing_call_count(s), d.ringing_calls(s).len());
            }
        }
    }
}
