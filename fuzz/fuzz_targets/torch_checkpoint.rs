//! A `model.pth.tar` checkpoint: the full reader, the up-front check (every entry read
//! through, CRC-32s compared) and the layout that maps parameters straight from the file, on
//! the same bytes. What the check accepts, the full reading accepts, with the same headers;
//! what the full reading accepts has a layout whose spans hold exactly each tensor's bytes
//! (the network is built from those bytes).

#![no_main]

use std::path::Path;

use clinicadl_rs::torchfile;
use clinicadl_rs_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("model.pth.tar");
    let full = torchfile::read_checkpoint_from_bytes(data, origin);
    let checked = torchfile::read_checkpoint_header_from_bytes(data, origin);
    let layout = torchfile::read_checkpoint_layout_from_bytes(data, origin);

    if let Ok(full) = &full {
        for (_, tensor) in &full.state_dict {
            let _ = tensor.to_f32_vec();
        }
        let layout = match &layout {
            Ok(layout) => layout,
            Err(e) => panic!("the checkpoint reads, but its layout does not: {e}"),
        };
        assert_eq!(layout.state_dict.len(), full.state_dict.len());
        assert_eq!((&layout.epoch, &layout.name), (&full.epoch, &full.name));
        for ((key, (header, span)), (full_key, tensor)) in
            layout.state_dict.iter().zip(&full.state_dict)
        {
            assert_eq!(key, full_key);
            assert_eq!(
                header,
                &tensor.header(),
                "layout header of `{key}` disagrees"
            );
            if let Some(span) = span {
                let start = usize::try_from(span.start).expect("span start fits");
                let end = start + usize::try_from(span.len).expect("span length fits");
                let mapped = data.get(start..end).expect("span inside the file");
                assert_eq!(
                    Some(mapped),
                    tensor.contiguous_bytes(),
                    "the span of `{key}` does not hold its values"
                );
            }
        }
    }
    if let Ok(checked) = &checked {
        let full = match &full {
            Ok(full) => full,
            Err(e) => panic!("the checkpoint passes the check, but does not read: {e}"),
        };
        assert_eq!((&checked.epoch, &checked.name), (&full.epoch, &full.name));
        let headers: Vec<_> = full
            .state_dict
            .iter()
            .map(|(k, t)| (k.clone(), t.header()))
            .collect();
        assert_eq!(checked.state_dict, headers, "the check's headers disagree");
    }
});
