# The Chameleon templates of m01.remote, installed as m01.remote.templates.
