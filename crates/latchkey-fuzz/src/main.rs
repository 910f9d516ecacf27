//! The afl driver: `latchkey-fuzz TARGET` feeds afl's inputs to one target of the library
//! (`cargo afl build --features afl -p latchkey-fuzz`; `scripts/fuzz.sh` runs it).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = latchkey_fuzz::target(&name) else {
        let names: Vec<_> = latchkey_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: latchkey-fuzz TARGET   (one of: {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        (target.run)(data);
    });
}
