# Settings shared by run.sh and ci.sh (sourced, not run).
#
# cargo-fuzz needs nightly rustc flags (-Zsanitizer). The installed nightly
# is used when there is one; otherwise the stable toolchain with
# RUSTC_BOOTSTRAP=1, which accepts the same flags (no toolchain can be
# downloaded on the project's machines).
if rustup run nightly rustc --version >/dev/null 2>&1; then
    FUZZ_CARGO=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    FUZZ_CARGO=(cargo fuzz)
fi
# Build flags: release with debug assertions and overflow checks (so an
# arithmetic overflow in a decoder is a finding), AddressSanitizer (the
# default). run.sh passes the same ones, so it never rebuilds.
FUZZ_BUILD_FLAGS=(--release --debug-assertions)
# Every target, in the order Cargo.toml lists them.
FUZZ_TARGETS=(keyslot_json config pack_header index_segment tree_decode snapshot
    prune_marks prune_lock verify_record blob_open group_open chunker roundtrip_meta
    roundtrip_pack drill_record)
