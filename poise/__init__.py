"""poise: live balance and movement analysis for physical therapy, from commodity BLE IMUs."""
