//! ESP32-CAM double (test support).
