# bash completion for visdcam (placeholder: subcommands and camera names).
_visdcam() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "start stop restart status logs lsram clean getdur setdur doctor ramlogs help" -- "$cur"))
        return
    fi
    local cams
    cams=$(ls /etc/visdcam/cameras/ 2>/dev/null | sed -n 's/\.conf$//p')
    COMPREPLY=($(compgen -W "all $cams" -- "$cur"))
}
complete -F _visdcam visdcam
