"""Regenerate the deployment files derived from the code (``make k8s-files``); the generator is the
package beside this file, ``deploy/generator`` (its docstring lists what it writes).

    .venv/bin/python deploy/generate.py
"""

from generator import main  # this file's folder, deploy/, is the first entry of sys.path

if __name__ == "__main__":
    main()
