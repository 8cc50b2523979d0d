//! The content-defined chunker against its invariants, on data expanded
//! from the input (see `chunker_input`): chunks cover the input in order,
//! every chunk but the last is within min..=max (the last within 1..=max);
//! the same input gives the same cuts, from this chunker and a fresh one;
//! a cut found in a prefix is final; streaming with reads split at
//! arbitrary sizes (and interrupted) and batching at an arbitrary step give
//! exactly the cuts of the whole input; and the cuts are FastCDC's own (the
//! model), so the zero-run shortcut never moves a cut.
#![no_main]
use fastcdc::v2020::{FastCDC, Normalization};
use libfuzzer_sys::fuzz_target;
use lifeboat_chunker::Chunker;
use lifeboat_fuzz::chunker_input::ChunkerInput;

fuzz_target!(|data: &[u8]| {
    let Some(inp) = ChunkerInput::parse(data) else {
        return;
    };
    let c = Chunker::new(inp.min, inp.avg, inp.max, inp.seed).expect("sizes in range");
    let d = &inp.data;
    let whole: Vec<(usize, usize)> = c.chunks(d).collect();

    let mut pos = 0;
    for (i, &(o, l)) in whole.iter().enumerate() {
        assert_eq!(o, pos, "chunks leave a gap or overlap");
        assert!((1..=inp.max).contains(&l), "chunk of {l} bytes");
        if i + 1 < whole.len() {
            assert!(l >= inp.min, "chunk of {l} bytes below the minimum");
        }
        pos += l;
    }
    assert_eq!(pos, d.len(), "chunks do not cover the input");

    assert_eq!(
        c.chunks(d).collect::<Vec<_>>(),
        whole,
        "same chunker, other cuts"
    );
    let fresh = Chunker::new(inp.min, inp.avg, inp.max, inp.seed).expect("sizes in range");
    assert_eq!(
        fresh.chunks(d).collect::<Vec<_>>(),
        whole,
        "fresh chunker, other cuts"
    );

    // FastCDC itself, hashing every byte (no zero-run shortcut).
    let reference: Vec<(usize, usize)> = FastCDC::with_level_and_seed(
        d,
        inp.min,
        inp.avg,
        inp.max,
        Normalization::Level1,
        inp.seed,
    )
    .map(|ch| (ch.offset, ch.length))
    .collect();
    assert_eq!(whole, reference, "cuts differ from FastCDC's");

    // A cut decided on a prefix is the cut of the whole input.
    let k_seed = inp.step;
    for (i, &(o, l)) in whole.iter().enumerate().take(64) {
        let k = 1 + (k_seed.wrapping_mul(i + 7)) % (inp.max + 1);
        let prefix = &d[o..(o + k).min(d.len())];
        if let Some(n) = c.next_cut(prefix, false) {
            assert_eq!(n, l, "a cut on a {}-byte prefix is not final", prefix.len());
        }
        // FastCDC v2020 decides the cut at `l` from the bytes up to and
        // including byte `l` (the next chunk's first), taken two at a time:
        // an input that ends at `l + 1` may end this chunk there instead.
        if prefix.len() > l + 1 {
            assert_eq!(
                c.next_cut(prefix, true),
                Some(l),
                "prefix of {}",
                prefix.len()
            );
        }
    }

    let streamed: Vec<Vec<u8>> = c
        .stream(inp.reader())
        .map(|r| r.expect("reading from memory"))
        .collect();
    let expected: Vec<&[u8]> = whole.iter().map(|&(o, l)| &d[o..o + l]).collect();
    assert_eq!(streamed.len(), expected.len(), "stream gives other chunks");
    for (s, e) in streamed.iter().zip(&expected) {
        assert_eq!(s.as_slice(), *e, "stream gives other chunks");
    }

    // Batches: the step is bounded so the work stays linear-ish.
    let step = inp.step.max(d.len() / 512).max(1);
    let mut batches = c.batches(inp.reader(), step);
    let mut bufs = [Vec::new(), Vec::new()];
    let mut cuts = Vec::new();
    let mut got = Vec::new();
    let (mut base, mut tail_start, mut i) = (0usize, 0usize, 0usize);
    loop {
        let (a, b) = bufs.split_at_mut(1);
        let (prev, cur) = if i % 2 == 0 {
            (&b[0], &mut a[0])
        } else {
            (&a[0], &mut b[0])
        };
        let t = batches
            .next_batch(&prev[tail_start.min(prev.len())..], cur, &mut cuts)
            .expect("reading from memory");
        assert!(
            cur.len() <= c.batch_capacity(step),
            "batch over its capacity"
        );
        assert!(t <= cur.len());
        got.extend(cuts.iter().map(|&(o, l)| (base + o, l)));
        base += t;
        tail_start = t;
        i += 1;
        if batches.is_done() {
            break;
        }
        assert!(i <= d.len() + 2, "batches do not end");
    }
    assert_eq!(got, whole, "batches at step {step} give other cuts");
});
