//! Named fault points in the data path (before and after an fsync, around a metadata commit,
//! inside repair), so that a test can make the fault that would break a piece of code happen
//! exactly there, deterministically.
//!
//! Owns: `hit(name)`, which says whether the fault point `name` fires now, and what it does.
//! Must never depend on: any other crate (it sits below everything that uses it).
//! Invariants: without the `enabled` feature `hit` is a constant `None` and compiles away; with
//! it, faults come only from the `IGNIFUGE_FAULTS` environment variable of the process, read
//! once: `name=action[@n][,name=action[@n]...]`, where action is `error`, `panic`, `exit` or
//! `sleep:<ms>`, and `@n` makes it fire at the n-th hit of that point only (1-based; without
//! it, at every hit). A name may be scoped to one process, `scope/name=...`: it then fires only in
//! the process that called `set_scope(scope)` (a storage node's scope is its node id), so a test
//! can fail one node's disk while the whole cluster shares one environment.
//!
//! Links. `link(to)` says what happens to an internode request from this process to address
//! `to`, after rules a test writes, and rewrites while the cluster runs, in the file named by
//! `IGNIFUGE_LINKS_FILE` (re-read when it changes; no file or an empty one: every link is
//! healthy). A process is known by the address it listens on (`set_identity`). One rule per line:
//! `cut A | B` loses every request between a member of A and a member of B, both ways (a network
//! partition: requests get no answer until their timeout); `slow A > B <ms>` delays requests from
//! A to B by that long (a slow link). A and B are comma-separated addresses.

/// What a fault point that fires does; the code at the point decides what `Error` means there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the operation as the point documents (an I/O error, a lost answer, ...).
    Error,
    /// Sleep this long, then go on (a stall).
    Sleep(u64),
    /// The message is lost: no answer ever comes (a partitioned link).
    Drop,
}

/// Whether fault point `name` fires now. `panic` and `exit` actions never return (`exit` is a
/// crash with no cleanup: exit code 137, as after kill -9).
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn hit(_name: &str) -> Option<Action> {
    None
}

/// Names this process for scoped fault points (`scope/name=...`); call once at start-up.
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn set_scope(_scope: &str) {}

/// What happens to a request from this process to `to` (see "Links" above).
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn link(_to: &str) -> Option<Action> {
    None
}

/// Names this process by the address it listens on, for link rules; call once at start-up.
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn set_identity(_address: &str) {}

#[cfg(feature = "enabled")]
pub use enabled::{hit, link, set_identity, set_scope};

#[cfg(feature = "enabled")]
mod enabled {
    use super::Action;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug)]
    enum Effect {
        Return(Action),
        Panic,
        Exit,
    }

    struct Point {
        /// Fires only in the process of this scope, if set.
        scope: Option<String>,
        name: String,
        effect: Effect,
        /// Fire only at this hit (1-based), or at every hit.
        at: Option<u64>,
        hits: AtomicU64,
    }

    fn parse(spec: &str) -> Vec<Point> {
        spec.split(',')
            .filter(|s| !s.trim().is_empty())
            .filter_map(|item| {
                let (name, rest) = item.trim().split_once('=')?;
                let (scope, name) = match name.split_once('/') {
                    Some((scope, name)) => (Some(scope.to_string()), name),
                    None => (None, name),
                };
                let (action, at) = match rest.split_once('@') {
                    Some((a, n)) => (a, Some(n.parse().ok()?)),
                    None => (rest, None),
                };
                let effect = match action {
                    "error" => Effect::Return(Action::Error),
                    "panic" => Effect::Panic,
                    "exit" => Effect::Exit,
                    sleep => Effect::Return(Action::Sleep(sleep.strip_prefix("sleep:")?.parse().ok()?)),
                };
                Some(Point { scope, name: name.to_string(), effect, at, hits: AtomicU64::new(0) })
            })
            .collect()
    }

    fn points() -> &'static [Point] {
        static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
        POINTS.get_or_init(|| parse(&std::env::var("IGNIFUGE_FAULTS").unwrap_or_default()))
    }

    static SCOPE: OnceLock<String> = OnceLock::new();

    pub fn set_scope(scope: &str) {
        let _ = SCOPE.set(scope.to_string());
    }

    /// A link rule: `cut A | B` (both ways) or `slow A > B ms` (one way).
    #[derive(Debug, PartialEq)]
    enum Rule {
        Cut(Vec<String>, Vec<String>),
        Slow(Vec<String>, Vec<String>, u64),
    }

    fn members(list: &str) -> Vec<String> {
        list.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect()
    }

    fn parse_links(text: &str) -> Vec<Rule> {
        text.lines()
            .filter_map(|line| {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("cut ") {
                    let (a, b) = rest.split_once('|')?;
                    return Some(Rule::Cut(members(a), members(b)));
                }
                let rest = line.strip_prefix("slow ")?;
                let (a, rest) = rest.split_once('>')?;
                let (b, ms) = rest.trim().rsplit_once(' ')?;
                Some(Rule::Slow(members(a), members(b), ms.parse().ok()?))
            })
            .collect()
    }

    fn judge(rules: &[Rule], me: &str, to: &str) -> Option<Action> {
        let has = |list: &[String], who: &str| list.iter().any(|m| m == who);
        rules.iter().find_map(|rule| match rule {
            Rule::Cut(a, b) if (has(a, me) && has(b, to)) || (has(b, me) && has(a, to)) => Some(Action::Drop),
            Rule::Slow(a, b, ms) if has(a, me) && has(b, to) => Some(Action::Sleep(*ms)),
            _ => None,
        })
    }

    static IDENTITY: OnceLock<String> = OnceLock::new();

    pub fn set_identity(address: &str) {
        let _ = IDENTITY.set(address.to_string());
    }

    /// The rules in force, re-read from the links file at most every 50 ms when it changed.
    struct Links {
        checked: std::time::Instant,
        modified: Option<std::time::SystemTime>,
        rules: std::sync::Arc<Vec<Rule>>,
    }

    pub fn link(to: &str) -> Option<Action> {
        static PATH: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
        static LINKS: std::sync::Mutex<Option<Links>> = std::sync::Mutex::new(None);
        let path = PATH.get_or_init(|| std::env::var_os("IGNIFUGE_LINKS_FILE").map(Into::into)).as_ref()?;
        let me = IDENTITY.get()?;
        let rules = {
            let mut links = LINKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let stale = links.as_ref().is_none_or(|l| l.checked.elapsed() >= std::time::Duration::from_millis(50));
            if stale {
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let rules = match links.as_ref() {
                    Some(l) if l.modified == modified => l.rules.clone(),
                    _ => std::sync::Arc::new(parse_links(&std::fs::read_to_string(path).unwrap_or_default())),
                };
                *links = Some(Links { checked: std::time::Instant::now(), modified, rules });
            }
            links.as_ref().expect("just set").rules.clone()
        };
        judge(&rules, me, to)
    }

    pub fn hit(name: &str) -> Option<Action> {
        let scope = SCOPE.get();
        let point = points().iter().find(|p| p.name == name && p.scope.as_ref().is_none_or(|s| Some(s) == scope))?;
        let hit = point.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if point.at.is_some_and(|at| at != hit) {
            return None;
        }
        eprintln!("fault point {name} fires ({:?}, hit {hit})", point.effect);
        match point.effect {
            Effect::Return(action) => Some(action),
            Effect::Panic => panic!("fault point {name}"),
            Effect::Exit => std::process::exit(137),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn specs_parse_into_points() {
            let points = parse("a=error@2, b=sleep:50,c=exit,bad,d=nonsense,dc2-n2/e=error");
            let names: Vec<_> = points.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, vec!["a", "b", "c", "e"]);
            assert_eq!(points[3].scope.as_deref(), Some("dc2-n2"));
            assert_eq!(points[0].scope, None);
            assert_eq!(points[0].at, Some(2));
            assert!(matches!(points[1].effect, Effect::Return(Action::Sleep(50))));
            assert!(matches!(points[2].effect, Effect::Exit));
        }

        #[test]
        fn link_rules_cut_both_ways_and_slow_one_way() {
            let rules = parse_links("cut a:1, b:2 | c:3\nslow a:1 > d:4 250\nnonsense\n");
            assert_eq!(rules.len(), 2);
            assert_eq!(judge(&rules, "a:1", "c:3"), Some(Action::Drop));
            assert_eq!(judge(&rules, "c:3", "b:2"), Some(Action::Drop), "a cut is both ways");
            assert_eq!(judge(&rules, "a:1", "b:2"), None, "within one side");
            assert_eq!(judge(&rules, "a:1", "d:4"), Some(Action::Sleep(250)));
            assert_eq!(judge(&rules, "d:4", "a:1"), None, "a slow link is one way");
        }
    }
}
