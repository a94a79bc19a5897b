from setuptools import setup

setup(
    name='m01remote-demo',
    version='1.0.0.dev0',
    description='A demo site for m01.remote: the management pages behind '
                'a login, with a few jobs and scheduler items',
    license='ZPL 2.1',
    packages=['m01remote_demo'],
    python_requires='>=3.10',
    install_requires=['m01.remote'],
    entry_points={
        'paste.app_factory': ['main = m01remote_demo:main'],
    },
)
