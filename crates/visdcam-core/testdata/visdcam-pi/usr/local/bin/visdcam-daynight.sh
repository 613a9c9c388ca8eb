#!/bin/bash
# Day (06:00-18:00 IST) or night preset on every camera's control port.
h=$(TZ=Asia/Kolkata date +%H)
for ip in 192.168.1.33 192.168.1.36; do
    if [ "$h" -ge 6 ] && [ "$h" -lt 18 ]; then
        curl -fsS "http://$ip/control?var=aec&val=1" || true
    else
        curl -fsS "http://$ip/control?var=aec&val=0" || true
    fi
done
