// SPDX-License-Identifier: GPL-2.0

//! kmalloc_demo: the "kmalloc Memory Pool Demo Module", mirrored in safe Rust.
//!
//! It allocates two named buffers with `GFP_KERNEL`, writes a string into
//! each, logs every step and frees both on unload. The behaviour and every
//! log line follow the C reference (see `Documentation/kmalloc_demo.rst`);
//! the only intended difference is that a write is also clamped to the length
//! of its source data. Two module parameters override the buffer sizes so
//! that the failure paths can be tested:
//!
//! ```text
//! insmod kmalloc_demo.ko eth_buf_size=0          # -EINVAL
//! insmod kmalloc_demo.ko eth_buf_size=1099511627776   # -ENOMEM, buffer 1 freed
//! ```

use kernel::prelude::*;

mod demo_buffer;

use demo_buffer::DemoBuffer;

module! {
    type: KmallocDemo,
    name: "kmalloc_demo",
    authors: ["rslab developers"],
    description: "kmalloc Memory Pool Demo Module (safe Rust mirror), version 1.0",
    license: "GPL",
    params: {
        uart_buf_size: usize {
            default: 1024,
            description: "Size in bytes of buffer 1, uart_data_buf (default 1024)",
        },
        eth_buf_size: usize {
            default: 4096,
            description: "Size in bytes of buffer 2, eth_frame_buf (default 4096)",
        },
    },
}

/// The module state: the two demo buffers.
struct KmallocDemo {
    uart: DemoBuffer,
    eth: DemoBuffer,
}

impl kernel::Module for KmallocDemo {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("[kmalloc-demo] Module loading...\n");

        let mut uart = DemoBuffer::new("uart_data_buf");
        uart.init(module_parameters::uart_buf_size.value())?;
        let mut eth = DemoBuffer::new("eth_frame_buf");
        // On failure `uart` is dropped here, which frees it and logs its
        // "memory freed" line, as the C module's error path does.
        eth.init(module_parameters::eth_buf_size.value())?;

        // The lengths are the C module's: both cut the string short.
        uart.write(b"UART hardware data: 0x12 0x34 0x56", 32);
        eth.write(
            b"Ethernet frame: Destination=00:11:22:33:44:55, Source=66:77:88:99:AA:BB",
            64,
        );

        pr_info!("[kmalloc-demo] Module loaded successfully!\n");
        Ok(KmallocDemo { uart, eth })
    }
}

impl Drop for KmallocDemo {
    fn drop(&mut self) {
        pr_info!("[kmalloc-demo] Module unloading...\n");
        // Free explicitly so that both lines come before "unloaded!".
        self.uart.free();
        self.eth.free();
        pr_info!("[kmalloc-demo] Module unloaded!\n");
    }
}
