# bash completion for visdcam (installed as /usr/share/bash-completion/completions/visdcam)

_visdcam_cameras() {
    local dir="${VISDCAM_CONFIG_DIR:-/etc/visdcam}/cameras" f
    for f in "$dir"/*.conf; do
        [[ -e $f ]] || continue
        f=${f##*/}
        printf '%s\n' "${f%.conf}"
    done
}

_visdcam() {
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="status start stop restart logs lsram clean getdur setdur enable disable cameras preset footage fetch play doctor ramlogs migrate web web-password metrics alert top help"

    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}
    local cams
    cams=$(_visdcam_cameras)

    case $prev in
        -n|--lines|--older-than|--expires|--profile|--bucket|--endpoint|--region)
            return ;;
        -o|--output)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
    esac

    local opts=""
    case $cmd in
        status) opts="--json"; COMPREPLY=($(compgen -W "$cams $opts" -- "$cur")) ;;
        start|stop|restart) COMPREPLY=($(compgen -W "$cams all" -- "$cur")) ;;
        logs) COMPREPLY=($(compgen -W "$cams all -f --follow -n --lines" -- "$cur")) ;;
        lsram) COMPREPLY=($(compgen -W "$cams all --json" -- "$cur")) ;;
        clean) COMPREPLY=($(compgen -W "$cams all --older-than -y --yes" -- "$cur")) ;;
        getdur) COMPREPLY=($(compgen -W "$cams all" -- "$cur")) ;;
        setdur)
            if (( COMP_CWORD == 2 )); then
                COMPREPLY=($(compgen -W "$cams" -- "$cur"))
            fi ;;
        enable|disable) COMPREPLY=($(compgen -W "$cams all --now" -- "$cur")) ;;
        cameras) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
        preset)
            if (( COMP_CWORD == 2 )); then
                COMPREPLY=($(compgen -W "$cams all" -- "$cur"))
            elif (( COMP_CWORD == 3 )); then
                COMPREPLY=($(compgen -W "day night auto" -- "$cur"))
            fi ;;
        footage|fetch|play)
            local store="--profile --bucket --endpoint --region"
            if (( COMP_CWORD == 2 )); then
                COMPREPLY=($(compgen -W "$cams" -- "$cur"))
            elif [[ $cur == -* ]]; then
                case $cmd in
                    footage) opts="--json $store" ;;
                    fetch) opts="-o --output $store" ;;
                    play) opts="--open --expires -o --output $store" ;;
                esac
                COMPREPLY=($(compgen -W "$opts" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "now today yesterday" -- "$cur"))
            fi ;;
        ramlogs) (( COMP_CWORD == 2 )) && COMPREPLY=($(compgen -W "on off status" -- "$cur")) ;;
        migrate) COMPREPLY=($(compgen -W "--dry-run --bucket --endpoint --region --camera" -- "$cur")) ;;
        alert) (( COMP_CWORD == 2 )) && COMPREPLY=($(compgen -W "check test" -- "$cur")) ;;
        metrics) COMPREPLY=($(compgen -W "--http" -- "$cur")) ;;
        top) COMPREPLY=($(compgen -W "--once" -- "$cur")) ;;
        help) (( COMP_CWORD == 2 )) && COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
    esac
}

complete -F _visdcam visdcam
