#!/bin/bash
# cam2: ESP32-CAM MJPEG -> x264 -> MPEG-TS segments in /mnt/ramcam/cam2
# Segment length: visdcam getdur cam2 / visdcam setdur cam2 SECONDS (rewrites SEG_NS below).
CAM_IP=192.168.1.36
STREAM="http://${CAM_IP}:81/stream"
OUT=/mnt/ramcam/cam2
SEG_NS=60000000000

mkdir -p "$OUT"
exec gst-launch-1.0 -e souphttpsrc location="$STREAM" is-live=true do-timestamp=true \
    ! multipartdemux ! jpegdec ! videoconvert \
    ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=1000 key-int-max=30 \
    ! h264parse ! splitmuxsink muxer-factory=mpegtsmux max-size-time=$SEG_NS \
      location="$OUT/home-cam-2-%05d.ts"
