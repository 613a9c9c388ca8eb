#!/bin/bash
# Uploads closed cam2 segments to B2 with aws-cli, rate-capped by pv, then deletes them.
# Knobs: /etc/default/uploader-cam2 (RATE_KBPS, B2_PROFILE, B2_REGION, B2_ENDPOINT).
[ -r /etc/default/uploader-cam2 ] && . /etc/default/uploader-cam2
RATE_KBPS="${RATE_KBPS:-500}"
B2_PROFILE="${B2_PROFILE:-b2}"
B2_REGION="${B2_REGION:-ca-east-006}"
B2_ENDPOINT="${B2_ENDPOINT:-https://s3.${B2_REGION}.backblazeb2.com}"
BUCKET=visd-cctv
CAM=cam2
N=2
DIR=/mnt/ramcam/$CAM
LOG=/run/visdcam/uploader-$CAM.log
export TZ=Asia/Kolkata

mkdir -p /run/visdcam
while true; do
    for f in "$DIR"/home-cam-$N-*.ts; do
        [ -e "$f" ] || continue
        # Still being written by gst-launch?
        lsof "$f" >/dev/null 2>&1 && continue
        key="$CAM/$(date -r "$f" +%Y/%m/%d/%H)/cam_${N}_$(date -r "$f" +%Y_%m_%d_%H_%M_%S).ts"
        if pv -q -L "${RATE_KBPS}k" "$f" | aws --profile "$B2_PROFILE" --region "$B2_REGION" \
            --endpoint-url "$B2_ENDPOINT" s3 cp - "s3://$BUCKET/$key" >>"$LOG" 2>&1; then
            echo "$(date -Is) uploaded $f -> $key" >>"$LOG"
            rm -f "$f"
        else
            echo "$(date -Is) upload of $f failed" >>"$LOG"
        fi
    done
    sleep 5
done
