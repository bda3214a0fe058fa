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

/// What a fault point that fires does; the code at the point decides what `Error` means there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the operation as the point documents (an I/O error, a lost answer, ...).
    Error,
    /// Sleep this long, then go on (a stall).
    Sleep(u64),
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

#[cfg(feature = "enabled")]
pub use enabled::{hit, set_scope};

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
    }
}
