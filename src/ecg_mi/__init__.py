"""ecg-mi."""
