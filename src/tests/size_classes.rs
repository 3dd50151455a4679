use crate::block::{block_size_for, payload_capacity, ALIGNMENT, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, SIZE_GRANULE};
use crate::size_class::*;

#[test]
fn every_small_size_maps_into_its_bin_range() {
    let mut size = MIN_BLOCK_SIZE;
    while size <= 4 << 20 {
        let bin = bin_for_size(size);
        assert!(bin < BIN_COUNT);
        assert!(bin_lower_bound(bin) <= size, "size {size} below its bin {bin}");
        if bin + 1 < BIN_COUNT {
            assert!(size < bin_lower_bound(bin + 1), "size {size} reaches the next bin");
        }
        size += SIZE_GRANULE;
    }
}

#[test]
fn large_sizes_map_into_their_bin_range() {
    for shift in 22..48 {
        for delta in [0usize, 16, 1 << (shift - 3), (1 << (shift - 1)) + 48] {
            let size = ((1usize << shift) + delta).min(MAX_BLOCK_SIZE);
            let bin = bin_for_size(size);
            assert!(bin_lower_bound(bin) <= size);
            if bin + 1 < BIN_COUNT {
                assert!(size < bin_lower_bound(bin + 1));
            }
        }
    }
    assert_eq!(bin_for_size(MAX_BLOCK_SIZE), BIN_COUNT - 1);
}

#[test]
fn bin_bounds_increase_strictly() {
    for bin in 1..BIN_COUNT {
        assert!(bin_lower_bound(bin) > bin_lower_bound(bin - 1), "bin {bin}");
        assert_eq!(bin_for_size(bin_lower_bound(bin)), bin);
    }
}

#[test]
fn exact_bins_hold_one_size() {
    for bin in 0..EXACT_BINS {
        assert!(is_exact_bin(bin));
        assert_eq!(bin_for_size(bin_lower_bound(bin)), bin);
        assert_eq!(bin_lower_bound(bin + 1) - bin_lower_bound(bin), SIZE_GRANULE);
    }
}

#[test]
fn block_sizes_fit_requests_with_minimal_slack() {
    for request in 0..10_000usize {
        let size = block_size_for(request).unwrap();
        assert!(size >= MIN_BLOCK_SIZE && size % SIZE_GRANULE == 0);
        assert!(payload_capacity(size) >= request);
        assert!(size == MIN_BLOCK_SIZE || payload_capacity(size) - request < ALIGNMENT, "{request}");
    }
    assert!(block_size_for(usize::MAX).is_none());
    assert!(block_size_for(MAX_BLOCK_SIZE).is_none());
}

#[test]
fn size_options_parse_with_suffixes() {
    use crate::config::parse_size;
    assert_eq!(parse_size(b"4096"), Some(4096));
    assert_eq!(parse_size(b"256k"), Some(256 << 10));
    assert_eq!(parse_size(b"2M"), Some(2 << 20));
    assert_eq!(parse_size(b"1g"), Some(1 << 30));
    assert_eq!(parse_size(b""), None);
    assert_eq!(parse_size(b"k"), None);
    assert_eq!(parse_size(b"12x"), None);
    assert_eq!(parse_size(b"99999999999999999999999"), None);
}

#[test]
fn page_size_is_base_page() {
    assert_eq!(rustix::param::page_size(), crate::os::PAGE_SIZE);
}

#[test]
fn cache_classes_round_trip() {
    use crate::thread_cache::{block_size_of_class, class_of_block, class_of_request, CACHED_REQUEST_MAX, CLASS_COUNT};
    for request in 0..=CACHED_REQUEST_MAX {
        let need = block_size_for(request).unwrap();
        let class = class_of_request(request);
        assert!(class < CLASS_COUNT);
        assert!(block_size_of_class(class) >= need, "request {request}");
        assert!(class == 0 || block_size_of_class(class - 1) < need, "request {request} not in smallest class");
        assert_eq!(class_of_block(block_size_of_class(class)), class);
        // Slack stays within 12.5% above the exact range.
        assert!(block_size_of_class(class) - need <= need / 8 + SIZE_GRANULE, "request {request}");
    }
    // A block goes back to the largest class it can serve.
    let mut size = MIN_BLOCK_SIZE;
    while size <= 128 << 10 {
        let class = class_of_block(size);
        assert!(block_size_of_class(class) <= size);
        assert!(class + 1 == CLASS_COUNT || block_size_of_class(class + 1) > size, "block {size}");
        size += SIZE_GRANULE;
    }
}

#[test]
fn cache_lists_hold_16_kib_or_a_few_blocks() {
    use crate::thread_cache::{block_size_of_class, class_of_block, list_limit, CLASS_COUNT};
    for class in 0..CLASS_COUNT {
        let (size, limit) = (block_size_of_class(class), list_limit(class));
        assert!((1..=64).contains(&limit), "class {class}: limit {limit}");
        let few = if size > 32 << 10 { 1 } else { 4 };
        // Within 16 KiB (or at the block count that is always allowed), and not below it.
        assert!(limit * size <= 16 << 10 || limit == few, "class {class} ({size} B): limit {limit}");
        assert!(limit >= few.min((16 << 10) / size).max(1), "class {class} ({size} B): limit {limit}");
        assert!(limit == 64 || (limit + 1) * size > 16 << 10 || limit < few, "class {class}: room left");
    }
    assert_eq!(list_limit(class_of_block(4 << 10)), 4);
    assert_eq!(list_limit(class_of_block(32 << 10)), 4);
    assert_eq!(list_limit(class_of_block(64 << 10)), 1);
}
