"""SL 651-2014 (水文监测数据通信规约): RTU frames over TCP turned into gateway readings.

``frame`` splits, checks and decodes bytes (pure); ``elements`` is the standard's element table;
``convert`` turns decoded reports into gateway readings; ``server`` is the asyncio receiver and
``rtu`` the simulated stations that drive it.
"""
