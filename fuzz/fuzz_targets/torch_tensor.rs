//! A `.pt` tensor file (a CAPS tensor, a saved element): the whole-file reader, the header
//! reader that checks files cheaply, and the float32 reader the data loader uses, on the same
//! bytes; what one of them accepts, the others must read the same way.

#![no_main]

use std::path::Path;

use clinicadl_rs::torchfile::{self, Value};
use clinicadl_rs_fuzz::same_bits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz.pt");
    let value = torchfile::read_from_bytes(data, origin);
    let header = torchfile::read_tensor_header_from_bytes(data, origin);
    let dense = torchfile::read_tensor_f32_from_bytes(data, origin);

    if let Ok(Value::Tensor(tensor)) = &value {
        let _ = tensor.to_i64_vec();
        if let Some(bytes) = tensor.contiguous_bytes() {
            assert_eq!(bytes.len(), tensor.numel() * tensor.dtype.itemsize());
        }
        // The header reader checks less than a full reading: it accepts what that accepts.
        match &header {
            Ok(header) => assert_eq!(header, &tensor.header(), "header reader disagrees"),
            Err(e) => panic!("the file reads as a tensor, but its header does not: {e}"),
        }
        if let Ok(values) = tensor.to_f32_vec() {
            match &dense {
                Ok((dense_header, dense_values)) => {
                    assert_eq!(dense_header, &tensor.header());
                    assert!(same_bits(dense_values, &values), "float32 reader disagrees");
                }
                Err(e) => panic!("the tensor converts to float32, but read_tensor_f32 fails: {e}"),
            }
        }
    }
    if let Ok((dense_header, values)) = &dense {
        assert_eq!(values.len(), dense_header.numel());
        assert_eq!(
            header.as_ref().ok(),
            Some(dense_header),
            "header reader disagrees"
        );
        match &value {
            Ok(Value::Tensor(tensor)) => assert_eq!(&tensor.header(), dense_header),
            Ok(other) => panic!("read_tensor_f32 reads a {}", other.type_name()),
            Err(e) => panic!("read_tensor_f32 reads what the full reading refuses: {e}"),
        }
    }
});
