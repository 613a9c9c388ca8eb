#!/bin/bash
# cam1: ESP32-CAM MJPEG -> x264 -> MPEG-TS segments in /mnt/ramcam/cam1
# Segment length: visdcam getdur cam1 / visdcam setdur cam1 SECONDS (rewrites SEG_NS below).
CAM_IP=192.168.1.33
STREAM="http://${CAM_IP}:81/stream"
OUT=/mnt/ramcam/cam1
SEG_NS=60000000000

mkdir -p "$OUT"
exec gst-launch-1.0 -e souphttpsrc location="$STREAM" is-live=true do-timestamp=true \
    ! multipartdemux ! jpegdec ! videoconvert \
    ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=1000 key-int-max=30 \
    ! h264parse ! splitmuxsink muxer-factory=mpegtsmux max-size-time=$SEG_NS \
      location="$OUT/home-cam-1-%05d.ts"
